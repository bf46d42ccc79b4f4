defmodule ElixirScope.Foundation.Logic.EventLogicTest do
  use ExUnit.Case, async: true

  alias ElixirScope.Foundation.Logic.EventLogic
  alias ElixirScope.Foundation.TestSupport.RandomTerms
  alias ElixirScope.Foundation.Types
  alias ElixirScope.Foundation.Types.Event
  alias ElixirScope.Foundation.Validation.EventValidator

  doctest EventLogic

  describe "create_event/3" do
    test "fills defaults, with a millisecond monotonic timestamp" do
      before = System.monotonic_time(:millisecond)
      assert {:ok, %Event{} = e} = EventLogic.create_event(:custom, %{k: 1})
      after_ms = System.monotonic_time(:millisecond)

      assert e.event_type == :custom
      assert e.data == %{k: 1}
      assert is_integer(e.event_id) and e.event_id > 0
      assert before <= e.timestamp and e.timestamp <= after_ms
      assert %DateTime{} = e.wall_time
      assert e.node == Node.self()
      assert e.pid == self()
      assert e.correlation_id == nil and e.parent_id == nil
    end

    test "options override defaults; unknown options are ignored" do
      wall = ~U[2020-01-01 00:00:00Z]
      pid = spawn(fn -> :ok end)

      opts = [
        event_id: 7,
        timestamp: 123,
        wall_time: wall,
        node: :other@host,
        pid: pid,
        correlation_id: "cid",
        parent_id: 3,
        bogus: :x
      ]

      assert {:ok, e} = EventLogic.create_event(:t, nil, opts)

      assert {e.event_id, e.timestamp, e.wall_time, e.node, e.pid, e.correlation_id, e.parent_id} ==
               {7, 123, wall, :other@host, pid, "cid", 3}
    end

    test "nil type -> validation_failed; any atom accepted; bad opts -> type errors" do
      assert {:error, %Types.Error{error_type: :validation_failed, code: 2001} = e} =
               EventLogic.create_event(nil, %{})

      assert e.message == "Event type cannot be nil"
      assert {:ok, _} = EventLogic.create_event(:never_listed_anywhere, %{})
      assert {:ok, _} = EventLogic.create_event(true, %{})

      assert {:error, %{error_type: :type_mismatch}} =
               EventLogic.create_event(:t, %{}, event_id: "1")

      assert {:error, %{error_type: :data_too_large}} =
               EventLogic.create_event(:t, :binary.copy("x", 2_000_000))
    end

    test "timestamps are non-decreasing and ids unique" do
      events = for _ <- 1..100, do: elem(EventLogic.create_event(:t, 1), 1)
      stamps = Enum.map(events, & &1.timestamp)
      assert stamps == Enum.sort(stamps)
      assert length(Enum.uniq_by(events, & &1.event_id)) == 100
    end
  end

  describe "specialised constructors" do
    test "create_function_entry/5" do
      assert {:ok, e} =
               EventLogic.create_function_entry(M, :f, 2, [1, 2],
                 caller_module: C,
                 caller_function: :g,
                 caller_line: 9,
                 correlation_id: "c1"
               )

      assert e.event_type == :function_entry
      assert e.correlation_id == "c1"
      assert %{module: M, function: :f, arity: 2, args: [1, 2], caller_line: 9} = e.data
      assert is_integer(e.data.call_id) and e.data.call_id > 0
      assert {e.data.caller_module, e.data.caller_function} == {C, :g}
    end

    test "large args are truncated" do
      args = [String.duplicate("a", 20_000)]
      assert {:ok, e} = EventLogic.create_function_entry(M, :f, 1, args)
      assert %{truncated: true, original_size: size} = e.data.args
      assert size > 10_000
    end

    test "create_function_exit/7 keeps small results verbatim" do
      assert {:ok, e} = EventLogic.create_function_exit(M, :f, 1, 42, {:ok, [1]}, 1500, :normal)
      assert e.event_type == :function_exit

      assert e.data == %{
               call_id: 42,
               module: M,
               function: :f,
               arity: 1,
               result: {:ok, [1]},
               duration_ns: 1500,
               exit_reason: :normal
             }
    end

    test "create_state_change/5 compares untruncated states" do
      big = String.duplicate("s", 20_000)
      assert {:ok, e} = EventLogic.create_state_change(self(), :handle_call, big, big)
      assert e.data.state_diff == :no_change
      assert %{truncated: true} = e.data.old_state

      assert {:ok, e} =
               EventLogic.create_state_change(self(), :handle_cast, %{a: 1}, %{a: 2},
                 trigger_message: :msg,
                 trigger_call_id: 5,
                 parent_id: 4
               )

      assert e.data.state_diff == :changed
      assert {e.data.trigger_message, e.data.trigger_call_id, e.parent_id} == {:msg, 5, 4}
      assert e.data.server_pid == self()
    end
  end

  describe "serialization" do
    setup do
      {:ok, event} =
        EventLogic.create_event(:test, %{
          text: "héllo ✓ 日本",
          bin: <<0, 255, 1>>,
          tuple: {:a, [1, 2.5]},
          pid: self(),
          ref: make_ref()
        })

      %{event: event}
    end

    test "round trip is ==, compressed or not", %{event: event} do
      assert {:ok, bin} = EventLogic.serialize_event(event)
      assert EventLogic.deserialize_event(bin) == {:ok, event}
      assert {:ok, plain} = EventLogic.serialize_event(event, compression: false)
      assert plain == :erlang.term_to_binary(event)
      assert EventLogic.deserialize_event(plain) == {:ok, event}
    end

    # The bounds are on the operation's cost: the fastest of 5 calls, so that
    # one preemption of this test process on a busy machine (the async suite
    # shares 2 cores) is not counted as the operation's time.
    test "loose cost bounds: 400-byte event < 2 ms, 20-level data < 10 ms" do
      {:ok, small} = EventLogic.create_event(:test, %{payload: String.duplicate("x", 300)})
      assert fastest_micros(fn -> {:ok, _} = EventLogic.serialize_event(small) end) < 2_000

      nested = Enum.reduce(1..20, :leaf, fn i, acc -> %{level: i, child: acc} end)
      assert fastest_micros(fn -> {:ok, _} = EventLogic.create_event(:test, nested) end) < 10_000
    end

    defp fastest_micros(fun),
      do: Enum.min(for _ <- 1..5, do: fun |> :timer.tc() |> elem(0))

    test "calculate_serialized_size/1 == byte_size(serialize)", %{event: event} do
      {:ok, bin} = EventLogic.serialize_event(event)
      assert EventLogic.calculate_serialized_size(event) == {:ok, byte_size(bin)}
    end

    # Big data goes through the dirty NIF (test/unit/events_test.exs traces
    # which path each size takes); its bytes must be the BIF's.
    test "bytes equal :erlang.term_to_binary/2 on seeded random events, small and big",
         %{event: event} do
      :rand.seed(:exsss, {1, 2, 3})
      small = for _ <- 1..300, do: RandomTerms.term(4)
      many = for _ <- 1..4_000, do: RandomTerms.term(3)
      items = %{items: for(i <- 1..36_000, do: {i, :item, [i * 7]})}

      for data <- small ++ [many, items | RandomTerms.large()] do
        e = %{event | data: data}
        compressed = :erlang.term_to_binary(e, [:compressed])
        plain = :erlang.term_to_binary(e)
        assert EventLogic.serialize_event(e) == {:ok, compressed}
        assert EventLogic.serialize_event(e, compression: true) == {:ok, compressed}
        assert EventLogic.serialize_event(e, compression: false) == {:ok, plain}
        assert EventLogic.calculate_serialized_size(e) == {:ok, byte_size(compressed)}
        assert :erlang.binary_to_term(compressed) == e
      end
    end

    test "a big event that does not compress stays uncompressed, as with the BIF", %{
      event: event
    } do
      :rand.seed(:exsss, {1, 2, 3})
      e = %{event | data: :rand.bytes(300_000)}
      assert {:ok, <<131, tag, _::binary>> = bin} = EventLogic.serialize_event(e)
      assert tag != 80
      assert bin == :erlang.term_to_binary(e, [:compressed])
      assert bin == :erlang.term_to_binary(e)
      assert EventLogic.deserialize_event(bin) == {:ok, e}

      # Compressible: the 80 (compressed) tag, and a round trip.
      big = %{event | data: :binary.copy("abc", 100_000)}
      assert {:ok, <<131, 80, _::binary>> = packed} = EventLogic.serialize_event(big)
      assert byte_size(packed) < 10_000
      assert EventLogic.deserialize_event(packed) == {:ok, big}
    end

    test "garbage and non-events -> deserialization_failed with code nil" do
      for bin <- ["garbage", <<131, 1, 2>>, :erlang.term_to_binary(%{not: :event}), <<>>] do
        assert {:error, %Types.Error{} = e} = EventLogic.deserialize_event(bin)
        assert e.error_type == :deserialization_failed
        assert e.message == "Failed to deserialize event"
        assert e.context.binary_size == byte_size(bin)
        assert Map.has_key?(e.context, :original_error)
        assert {e.code, e.category, e.subcategory, e.severity} == {nil, :data, :runtime, :medium}
      end
    end

    test "an invalid decoded event -> the validator's error" do
      bin = :erlang.term_to_binary(Event.empty())

      assert {:error, %{error_type: :validation_failed, message: "Event ID cannot be nil"}} =
               EventLogic.deserialize_event(bin)
    end

    test "data at and around the size limit is judged as validate/1 judges it", %{event: event} do
      # Around the 900 000-byte bound under which a decoded event's size
      # proves its data small, and around the 1 000 000-byte limit itself;
      # funs count 3 bytes more in the size rule than in the encoding.
      fun = fn -> :ok end
      binaries = for size <- [899_000, 900_500, 999_000, 1_000_100], do: :binary.copy("x", size)
      funs = for n <- [10_400, 11_500], do: List.duplicate(fun, n)

      for data <- binaries ++ funs, compressed <- [true, false] do
        e = %{event | data: data}
        {:ok, bin} = EventLogic.serialize_event(e, compression: compressed)

        case EventValidator.validate(e) do
          :ok ->
            assert EventLogic.deserialize_event(bin) == {:ok, e}

          {:error, error} ->
            assert {:error, got} = EventLogic.deserialize_event(bin)
            assert %{got | timestamp: nil} == %{error | timestamp: nil}
        end
      end
    end

    test "a binary naming an unknown atom is rejected and the atom is not created", %{
      event: event
    } do
      name = "h2_never_created_atom_#{System.unique_integer([:positive])}"
      # External format: ATOM_EXT (100), 2-byte length, latin1 bytes (what OTP 25 emits).
      atom_ext = <<100, byte_size(name)::16, name::binary>>
      {:ok, bin} = EventLogic.serialize_event(%{event | data: :placeholder}, compression: false)
      placeholder = <<100, 11::16, "placeholder">>
      crafted = :binary.replace(bin, placeholder, atom_ext)
      assert crafted != bin

      assert {:error, %{error_type: :deserialization_failed}} =
               EventLogic.deserialize_event(crafted)

      assert_raise ArgumentError, fn -> String.to_existing_atom(name) end
      # The crafted binary is otherwise well formed: unsafe decoding would accept it.
      assert %Event{} = :erlang.binary_to_term(crafted)
      assert String.to_existing_atom(name)
    end
  end

  # Binaries that decode to over 64 KiB are decoded by a dirty NIF
  # (test/unit/events_test.exs traces which path each size takes); the
  # results must be those of the BIF path: `binary_to_term(b, [:safe])`,
  # then a match on %Event{} and the validator.
  describe "deserialization of big binaries" do
    setup do
      {:ok, event} =
        EventLogic.create_event(:big, %{items: for(i <- 1..12_000, do: {i, :item, [i * 7]})})

      compressed = :erlang.term_to_binary(event, [:compressed])
      plain = :erlang.term_to_binary(event)
      # Both over the threshold: the header announces the plain size.
      assert <<131, 80, announced::32, _::binary>> = compressed
      assert announced > 64 * 1024 and byte_size(plain) > 64 * 1024
      %{event: event, compressed: compressed, plain: plain}
    end

    # What deserialize_event/1 returned before the dirty path existed.
    defp bif_path(bin) do
      case :erlang.binary_to_term(bin, [:safe]) do
        %Event{} = event -> {:ok, event}
        other -> {:raised, %MatchError{term: other}}
      end
    rescue
      exception -> {:raised, exception}
    end

    defp assert_like_bif(bin) do
      case {bif_path(bin), EventLogic.deserialize_event(bin)} do
        {{:ok, event}, result} ->
          assert result == {:ok, event}

        {{:raised, exception}, {:error, %Types.Error{} = e}} ->
          assert {e.error_type, e.message, e.code} ==
                   {:deserialization_failed, "Failed to deserialize event", nil}

          assert e.context == %{original_error: exception, binary_size: byte_size(bin)}

        {expected, got} ->
          flunk("BIF path #{inspect(expected, limit: 5)}, got #{inspect(got, limit: 5)}")
      end
    end

    test "round trip is ==, compressed or not", %{event: e, compressed: c, plain: p} do
      assert EventLogic.serialize_event(e) == {:ok, c}
      assert EventLogic.deserialize_event(c) == {:ok, e}
      assert EventLogic.deserialize_event(p) == {:ok, e}

      # The 1 MB binary is over the validator's limit: its error, as before.
      for data <- RandomTerms.large() do
        big = %{e | data: data}
        {:ok, bin} = EventLogic.serialize_event(big)

        case EventValidator.validate(big) do
          :ok ->
            assert EventLogic.deserialize_event(bin) == {:ok, big}

          {:error, %{error_type: type, message: message}} ->
            assert {:error, %{error_type: ^type, message: ^message}} =
                     EventLogic.deserialize_event(bin)
        end
      end
    end

    test "garbage, truncated, trailing bytes and wrong sizes behave as with the BIF",
         %{compressed: c, plain: p} do
      :rand.seed(:exsss, {1, 2, 3})
      <<131, 80, size::32, stream::binary>> = c
      <<131, body::binary>> = p
      inner_trailing = body <> "trailing"
      zlib = :zlib.compress(inner_trailing)

      cases = [
        <<131, :rand.bytes(100_000)::binary>>,
        <<131, 80, 100_000::32, :rand.bytes(1_000)::binary>>,
        binary_part(c, 0, byte_size(c) - 1),
        binary_part(p, 0, byte_size(p) - 1),
        binary_part(c, 0, div(byte_size(c), 2)),
        c <> "trailing",
        p <> "trailing",
        <<131, 80, byte_size(inner_trailing)::32, zlib::binary>>,
        <<131, 80, size + 1::32, stream::binary>>,
        <<131, 80, size - 1::32, stream::binary>>,
        <<131, 80, 0xFFFFFFFF::32, stream::binary>>,
        # A compressed form inside a compressed form.
        <<131, 80, byte_size(c) - 1::32,
          :zlib.compress(binary_part(c, 1, byte_size(c) - 1))::binary>>,
        :erlang.term_to_binary(%{not: :event, items: Enum.to_list(1..20_000)}, [:compressed]),
        :erlang.term_to_binary(Enum.to_list(1..20_000))
      ]

      for bin <- cases, do: assert_like_bif(bin)
      # The wrong-size, truncated and garbage cases fail, the trailing ones decode.
      assert [:raised, :raised, :raised, :raised, :raised, :ok, :ok, :ok] ==
               cases |> Enum.take(8) |> Enum.map(&elem(bif_path(&1), 0))
    end

    test "seeded random corruptions of a big binary behave as with the BIF",
         %{compressed: c, plain: p} do
      :rand.seed(:exsss, {1, 2, 3})

      for _ <- 1..150, bin <- [c, p] do
        i = :rand.uniform(byte_size(bin)) - 1
        <<head::binary-size(i), byte, rest::binary>> = bin
        assert_like_bif(<<head::binary, Bitwise.bxor(byte, :rand.uniform(255)), rest::binary>>)
        assert_like_bif(binary_part(bin, 0, i))
      end
    end

    test "an unknown atom is rejected and not created, compressed or not", %{event: e} do
      name = "h3_never_created_big_atom_#{System.unique_integer([:positive])}"
      atom_ext = <<100, byte_size(name)::16, name::binary>>
      {:ok, p} = EventLogic.serialize_event(%{e | event_type: :placeholder}, compression: false)
      crafted = :binary.replace(p, <<100, 11::16, "placeholder">>, atom_ext)
      assert crafted != p and byte_size(crafted) > 64 * 1024
      <<131, body::binary>> = crafted
      packed = <<131, 80, byte_size(body)::32, :zlib.compress(body)::binary>>

      for bin <- [crafted, packed] do
        assert {:error, %{error_type: :deserialization_failed}} =
                 EventLogic.deserialize_event(bin)

        assert_like_bif(bin)
        assert_raise ArgumentError, fn -> String.to_existing_atom(name) end
      end

      # Otherwise well formed: unsafe decoding accepts it (and creates the atom).
      assert %Event{event_type: atom} = :erlang.binary_to_term(packed)
      assert Atom.to_string(atom) == name
    end

    test "a decoded invalid big event -> the validator's error", %{event: e} do
      bin = :erlang.term_to_binary(%{e | event_id: nil}, [:compressed])

      assert {:error, %{error_type: :validation_failed, message: "Event ID cannot be nil"}} =
               EventLogic.deserialize_event(bin)
    end
  end

  describe "correlation and time helpers" do
    setup do
      events =
        for {id, ts, cid} <- [
              {1, 30, "a"},
              {2, 10, "b"},
              {3, 20, "a"},
              {4, 10, nil},
              {5, 20, "a"}
            ] do
          %Event{event_id: id, event_type: :t, timestamp: ts, correlation_id: cid}
        end

      %{events: events}
    end

    test "extract_correlation_chain/2 filters and stably sorts", %{events: events} do
      assert Enum.map(EventLogic.extract_correlation_chain(events, "a"), & &1.event_id) ==
               [3, 5, 1]

      assert EventLogic.extract_correlation_chain(events, "zz") == []
      assert_raise FunctionClauseError, fn -> EventLogic.extract_correlation_chain(events, :a) end
    end

    test "group_by_correlation/1 drops nil ids", %{events: events} do
      groups = EventLogic.group_by_correlation(events)
      assert Map.keys(groups) |> Enum.sort() == ["a", "b"]
      assert Enum.map(groups["a"], & &1.event_id) == [3, 5, 1]
    end

    test "filter_by_time_range/3 is inclusive and keeps order", %{events: events} do
      assert Enum.map(EventLogic.filter_by_time_range(events, 10, 20), & &1.event_id) ==
               [2, 3, 4, 5]

      assert_raise FunctionClauseError, fn -> EventLogic.filter_by_time_range(events, 1.0, 2) end
    end

    test "transform_event_data/2", %{events: [e | _]} do
      assert EventLogic.transform_event_data(%{e | data: 2}, &(&1 * 3)).data == 6
    end
  end
end
