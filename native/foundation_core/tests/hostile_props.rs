//! Hostile-input properties: the core's pure decoders and validators take
//! data a caller controls (JSON text, config trees, event fields, query
//! parameters, metric values, fallback blobs). On random input they must
//! return `Ok`/`Err`, never panic (a panic surfaces in the VM as
//! `:nif_panicked`), and never allocate in proportion to a number the caller
//! chose instead of to the data it sent. The external-term-format readers
//! (`etf::decompress`, `etf::external_size`) get random bytes and random
//! corruptions of valid encodings.

use foundation_core::etf;
use foundation_core::fallback::Buffer;
use foundation_core::json;
use foundation_core::metrics::{merge_value, Key, Measure};
use foundation_core::store::{NewEvent, Order, Query, Store, StoreConfig};
use foundation_core::validation::config::{validate_config, validate_section, Section};
use foundation_core::validation::event::{
    validate_event, validate_event_type, validate_required, validate_types, EventFields, Field,
};
use foundation_core::validation::testing::{default_config, set};
use foundation_core::value::OpaqueKind;
use foundation_core::Value;
use proptest::prelude::*;
use std::sync::Arc;

const SECTIONS: [&str; 5] = ["ai", "capture", "storage", "interface", "dev"];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Nil),
        any::<bool>().prop_map(Value::Bool),
        "[a-z_]{0,12}".prop_map(Value::Atom),
        prop_oneof![
            Just(i64::MIN),
            Just(i64::MAX),
            Just(0i64),
            Just(-1),
            any::<i64>()
        ]
        .prop_map(Value::Int),
        "-?[0-9]{19,40}".prop_map(Value::BigInt),
        prop_oneof![
            Just(-0.0f64),
            Just(1.0e308),
            Just(f64::MIN_POSITIVE),
            Just(f64::NAN),
            Just(f64::INFINITY),
            any::<f64>()
        ]
        .prop_map(Value::Float),
        proptest::collection::vec(any::<u8>(), 0..32).prop_map(Value::Binary),
        Just(Value::Opaque(OpaqueKind::Pid, "#PID<0.1.0>".into())),
        Just(Value::Opaque(OpaqueKind::Other, "[1 | 2]".into())),
    ]
}

fn tree() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::List),
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Tuple),
            proptest::collection::vec((inner.clone(), inner), 0..6).prop_map(Value::Map),
        ]
    })
}

/// A map keyed by the section and rule names, so random values reach the
/// rules behind the first checks.
fn config_like() -> impl Strategy<Value = Value> {
    let keys = prop_oneof![
        Just("provider"),
        Just("analysis"),
        Just("planning"),
        Just("sampling_rate"),
        Just("ring_buffer"),
        Just("processing"),
        Just("vm_tracing"),
        Just("hot"),
        Just("warm"),
        Just("cold"),
        Just("enable"),
        Just("query_timeout"),
        Just("debug_mode"),
    ];
    let path = proptest::collection::vec(keys, 1..4);
    let section = proptest::sample::select(&SECTIONS[..]);
    proptest::collection::vec((section, path, tree()), 1..6).prop_map(|edits| {
        edits
            .into_iter()
            .fold(default_config(), |config, (sec, path, v)| {
                let mut full = vec![sec];
                full.extend(path);
                set(&config, &full, v)
            })
    })
}

fn field() -> impl Strategy<Value = Field> {
    proptest::sample::select(vec![
        Field::Nil,
        Field::False,
        Field::PosInt,
        Field::NonPosInt,
        Field::Atom,
        Field::Binary,
        Field::DateTime,
        Field::Pid,
        Field::Other,
    ])
}

fn fields() -> impl Strategy<Value = EventFields> {
    proptest::collection::vec(field(), 8).prop_map(|f| EventFields {
        event_id: f[0],
        event_type: f[1],
        timestamp: f[2],
        wall_time: f[3],
        node: f[4],
        pid: f[5],
        correlation_id: f[6],
        parent_id: f[7],
    })
}

fn measure() -> impl Strategy<Value = Measure> {
    prop_oneof![
        prop_oneof![Just(i64::MIN), Just(i64::MAX), any::<i64>()].prop_map(Measure::Int),
        // The BEAM has no NaN or infinity: only finite floats arrive.
        prop_oneof![
            Just(f64::MAX),
            Just(f64::MIN),
            Just(-0.0),
            any::<f64>().prop_filter("finite", |f| f.is_finite())
        ]
        .prop_map(Measure::Float),
        proptest::collection::vec(any::<u8>(), 0..16).prop_map(Measure::Term),
    ]
}

fn key() -> impl Strategy<Value = Key> {
    prop_oneof![
        Just(Key::Gauge),
        Just(Key::Counter),
        proptest::collection::vec(any::<u8>(), 0..8).prop_map(Key::Other),
    ]
}

fn query() -> impl Strategy<Value = Query> {
    let order = proptest::sample::select(vec![Order::Id, Order::Timestamp, Order::TimestampDesc]);
    let range = proptest::option::of((any::<i64>(), any::<i64>()));
    let edge = prop_oneof![
        Just(0usize),
        Just(usize::MAX),
        Just(usize::MAX - 1),
        0..20usize
    ];
    (
        proptest::option::of("[a-c]{1,2}"),
        range,
        order,
        edge.clone(),
        proptest::option::of(edge),
    )
        .prop_map(|(ty, time_range, order, offset, limit)| Query {
            event_type: ty.map(|t| Arc::from(t.as_bytes())),
            time_range,
            order,
            offset,
            limit,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn json_decode_random_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = json::decode(&bytes);
    }

    #[test]
    fn json_decode_jsonish_text_never_panics(text in r#"[\[\]{}",:0-9eE.+\-a-z\\ ]{0,200}"#) {
        let _ = json::decode(text.as_bytes());
    }

    #[test]
    fn json_encode_random_trees_gives_parsable_json(value in tree()) {
        let text = json::encode(&value);
        prop_assert!(text.is_ok());
        let text = text.unwrap_or_default();
        prop_assert!(json::decode(text.as_bytes()).is_ok(), "unparsable: {}", text);
    }

    #[test]
    fn validate_config_random_trees_never_panics(value in tree()) {
        let _ = validate_config(&value);
        for name in SECTIONS {
            if let Some(section) = Section::from_name(name) {
                let _ = validate_section(section, &value);
            }
        }
    }

    #[test]
    fn validate_config_mutated_defaults_never_panics(value in config_like()) {
        let _ = validate_config(&value);
    }

    #[test]
    fn section_names_never_panic(name in "\\PC{0,16}") {
        let _ = Section::from_name(&name);
        let _ = validate_event_type(Some(&name));
    }

    #[test]
    fn event_rules_never_panic(f in fields(), size in prop_oneof![Just(u64::MAX), Just(1_000_001u64), any::<u64>()]) {
        let _ = validate_required(&f);
        let _ = validate_types(&f);
        let _ = validate_event(&f, size);
    }

    /// A merged float must stay finite: the NIF cannot return infinity to
    /// the VM (`enif_make_double` refuses it), so one overflowing counter
    /// would make every `get_metrics` raise.
    #[test]
    fn metric_merge_stays_finite(k in key(), old in measure(), new in measure()) {
        if let Measure::Float(f) = merge_value(&k, &old, new) {
            prop_assert!(f.is_finite(), "merged to {}", f);
        }
    }

    #[test]
    fn fallback_buffer_takes_any_bytes(items in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..150)) {
        let buffer = Buffer::new(100);
        for item in &items {
            prop_assert!(buffer.push(item.clone()).is_ok());
        }
        let listed = buffer.list().unwrap_or_default();
        prop_assert_eq!(listed.len(), items.len().min(100));
        prop_assert_eq!(buffer.take().unwrap_or_default(), listed);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn store_queries_with_extreme_parameters_never_panic(
        q in query(),
        ts in proptest::collection::vec(any::<i64>(), 1..20),
        cid in proptest::collection::vec(any::<u8>(), 0..8),
        prune in any::<i64>(),
    ) {
        let store = Store::new(StoreConfig { shards: 4, ..StoreConfig::default() });
        prop_assert!(store.is_ok());
        let Ok(store) = store else { return Ok(()) };
        for (i, t) in ts.iter().enumerate() {
            let event = NewEvent {
                id: (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
                event_type: Arc::from(["a", "b", "c"][i % 3].as_bytes()),
                timestamp: *t,
                correlation_id: Some(Arc::from(&cid[..])),
                payload: Arc::from(&t.to_le_bytes()[..]),
            };
            prop_assert!(store.put(event).is_ok());
        }
        prop_assert!(store.query(&q).is_ok());
        prop_assert!(store.get_by_correlation(&cid).is_ok());
        prop_assert!(store.get(u64::MAX).is_ok());
        prop_assert!(store.prune_before(prune).is_ok());
    }
}

#[test]
fn store_construction_with_huge_sizes_does_not_allocate_them() {
    for n in [0usize, 1 << 40, usize::MAX, (1 << 63) + 5] {
        let config = StoreConfig {
            shards: n,
            max_events: n,
            max_age_ms: u64::MAX,
            async_capacity: n,
        };
        let store = Store::new(config);
        assert!(store.is_ok(), "shards/capacity {n}");
        if let Ok(store) = store {
            assert!(store.query(&Query::default()).is_ok());
        }
    }
}

#[test]
fn json_decode_deep_nesting_is_an_error_not_a_stack_overflow() {
    for open in ["[", "{\"a\":"] {
        let text = open.repeat(100_000);
        assert!(json::decode(text.as_bytes()).is_err());
    }
}

#[test]
fn validate_config_deeply_nested_extra_keys() {
    // The NIF converts terms to `Value` only up to 1 000 levels
    // (foundation_nif decode::MAX_DEPTH); config validation itself reads
    // terms in place and never builds a `Value`.
    let mut deep = Value::Nil;
    for _ in 0..1_000 {
        deep = Value::Map(vec![(Value::Atom("ai".into()), deep)]);
    }
    let config = set(&default_config(), &["dev", "extra"], deep.clone());
    assert!(validate_config(&config).is_ok());
    let _ = validate_config(&deep);
    assert!(json::encode(&deep).is_ok());
}

/// A compressed external term (`<<131, 80, Size::32, Zlib>>`) of `plain`
/// (`plain` without its own version byte, which `compress` adds).
fn compressed(plain: &[u8]) -> Vec<u8> {
    let mut etf_bytes = vec![etf::VERSION_MAGIC];
    etf_bytes.extend_from_slice(plain);
    match etf::compress(&etf_bytes, etf::DEFAULT_LEVEL) {
        Ok(Some(packed)) => packed,
        _ => etf_bytes,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn etf_readers_take_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = etf::external_size(&bytes);
        let _ = etf::decompress(&bytes);
        let mut framed = vec![etf::VERSION_MAGIC, etf::COMPRESSED_TAG, 0xFF, 0xFF, 0xFF, 0xFF];
        framed.extend_from_slice(&bytes);
        // 4 GiB announced over at most 512 bytes of stream: zlib cannot
        // reach it (its ratio is ~1 000:1), so this must fail, and without
        // allocating the announced size.
        prop_assert!(etf::decompress(&framed).is_err());
    }

    #[test]
    fn decompress_round_trips_and_rejects_corruption(
        plain in proptest::collection::vec(0u8..4, 200..2_000),
        at in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let packed = compressed(&plain);
        let mut expected = vec![etf::VERSION_MAGIC];
        expected.extend_from_slice(&plain);
        match etf::decompress(&packed) {
            Ok(Some(out)) => prop_assert_eq!(out, expected),
            Ok(None) => prop_assert_eq!(&packed, &expected),
            Err(e) => prop_assert!(false, "valid input refused: {e}"),
        }
        // A flipped byte: an error or some output, never a panic, and never
        // more than the header announces.
        let mut bad = packed.clone();
        let i = at.index(bad.len());
        bad[i] ^= flip;
        if let Ok(Some(out)) = etf::decompress(&bad) {
            let announced = u32::from_be_bytes([bad[2], bad[3], bad[4], bad[5]]) as usize;
            prop_assert_eq!(out.len(), announced + 1);
        }
    }
}
