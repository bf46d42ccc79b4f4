defmodule ElixirScope.Foundation.Services.EventStore.Heap do
  @moduledoc false
  # Room in the reading process's heap for a long answer, made before the
  # answer is read.
  #
  # A long answer is decoded slice by slice into the caller's heap. Left
  # alone, the heap grows by garbage collections as it fills, each copying
  # all that was read so far; past about a million words the VM grows a
  # heap by 20% a step, so a 50 000-event answer is copied several times
  # over. Collections of heaps that big run on the dirty CPU schedulers,
  # which compete with the normal schedulers for the cores: on a host with
  # few cores, every other process waits longer for its turn.
  #
  # Instead, once the first slice shows how many words an event takes and
  # the store tells how many events are left, the process's minimum heap
  # size is raised to fit the whole answer, and one minor collection is made
  # while little of it is live: the rest is decoded into free heap without
  # further collections. The caller's own minimum is restored after the
  # read (the heap shrinks back at a later collection). When the store can
  # only bound the answer's length (a time range is not counted), the room
  # starts at a few slices and doubles whenever half of it is used, up to
  # the bound, so the collections copy the answer about once in all.

  # Answers expected below this many words are left to the VM's own growth:
  # its collections of heaps that small are short and run in place.
  @min_words 65_536
  # Slack for the reader's own small terms (slice tuples, cursors).
  @slack_words 4_096
  # A bounded (not counted) answer first gets room for this many slices.
  @first_slices 8

  @typedoc "What the room covers: `{old_min, words_per_event, bound, room, read}`, or `:none`."
  @type room ::
          :none
          | {non_neg_integer(), pos_integer(), non_neg_integer(), non_neg_integer(),
             non_neg_integer()}

  @doc """
  Runs `fun.(room)` with room made for an answer whose first slice is
  `first` (not empty); `size.()` gives `{events_left, exact}` after it
  (`exact` false when `events_left` is only an upper bound). Restores the
  process's minimum heap size afterwards.
  """
  @spec with_room([term(), ...], (() -> {non_neg_integer(), boolean()}), (room() -> result)) ::
          result
        when result: term()
  def with_room([_ | _] = first, size, fun) when is_function(size, 0) and is_function(fun, 1) do
    case size.() do
      {left, exact} when is_integer(left) and left >= 0 and is_boolean(exact) ->
        make_room(first, left, exact, fun)

      # No usable size: the VM grows the heap as it would anyway.
      _ ->
        fun.(:none)
    end
  end

  defp make_room(first, left, exact, fun) do
    read = length(first)
    # Words of one event and its list cell, plus the cell of the final
    # list (the slices are concatenated once at the end).
    per_event = div(:erts_debug.flat_size(first), read) + 3
    bound = read + left

    if bound * per_event < @min_words do
      fun.(:none)
    else
      {:min_heap_size, old} = Process.info(self(), :min_heap_size)
      target = if exact, do: bound, else: min(bound, read * @first_slices)
      room = {old, per_event, bound, target, read}
      raise_min(room)
      # Little is live yet: this collection is short, and the new heap
      # has the room.
      :erlang.garbage_collect(self(), type: :minor)

      try do
        fun.(room)
      after
        Process.flag(:min_heap_size, old)
      end
    end
  end

  @doc "Counts `n` more events read; doubles a bounded answer's room when half of it is used."
  @spec read(room(), non_neg_integer()) :: room()
  def read(:none, _n), do: :none

  def read({old, per_event, bound, target, read}, n) do
    read = read + n

    if 2 * read > target and target < bound do
      room = {old, per_event, bound, min(bound, 2 * max(target, read)), read}
      raise_min(room)
      room
    else
      {old, per_event, bound, target, read}
    end
  end

  # Raises the minimum heap size to the room's words (never lowers the
  # caller's own, never past half of its max_heap_size when it has one).
  defp raise_min({old, per_event, _bound, target, _read}) do
    words = target * per_event + @slack_words

    words =
      case Process.info(self(), :max_heap_size) do
        {:max_heap_size, %{size: max}} when max > 0 -> min(words, div(max, 2))
        _ -> words
      end

    _ = if words > old, do: Process.flag(:min_heap_size, words)
    :ok
  end
end
