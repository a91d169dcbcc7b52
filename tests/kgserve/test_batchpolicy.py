"""The batching policy as pure functions: no threads, no model; token counts are given."""

from __future__ import annotations

from kgserve.providers.base import TokenCounts
from kgserve.serve.batchpolicy import (
    DrainRate,
    Request,
    by_owner,
    last_call,
    learn_rate,
    padded_tokens,
    retry_after,
    split_calls,
    take_batch,
)


def request(*lengths: int, key: tuple = (None, None)) -> Request:
    """A counted request of len(lengths) texts with these token counts."""
    r = Request([f"text {i}" for i in range(len(lengths))], key)
    r.counted(TokenCounts(lengths))
    return r


def taken(items) -> list[tuple[int, int]]:
    """Items as (request number, text index), numbering requests by first appearance."""
    ids: dict[int, int] = {}
    return [(ids.setdefault(id(r), len(ids)), i) for r, i in items]


def test_texts_go_shortest_first_within_a_request():
    r = request(9, 3, 7, 3)
    assert r.todo == [1, 3, 2, 0]
    assert taken(take_batch([r], max_batch=8, max_tokens=1000)) == [(0, 1), (0, 3), (0, 2),
                                                                    (0, 0)]


def test_round_robin_lets_a_small_request_ride_with_a_big_one():
    big, small = request(*[5] * 40), request(5)
    batch = take_batch([big, small], max_batch=8, max_tokens=10_000)
    assert len(batch) == 8
    assert taken(batch)[:2] == [(0, 0), (1, 0)]  # one text each per round
    assert sum(r is small for r, _ in batch) == 1


def test_the_padded_token_budget_counts_the_longest_text_times_the_count():
    r = request(10, 10, 100, 100, 100)
    batch = take_batch([r], max_batch=32, max_tokens=300)
    assert taken(batch) == [(0, 0), (0, 1), (0, 2)]  # 3 x 100 fits 300; 4 x 100 does not
    assert padded_tokens(batch) == 300
    assert taken(take_batch([r], max_batch=32, max_tokens=299)) == [(0, 0), (0, 1)]


def test_the_first_text_joins_even_over_the_budget():
    huge = request(5000)
    assert taken(take_batch([huge], max_batch=8, max_tokens=100)) == [(0, 0)]


def test_only_requests_of_the_oldest_kind_share_a_batch():
    query = request(4, key=("query", None))
    plain = request(4, 4)
    query2 = request(4, key=("query", None))
    batch = take_batch([query, plain, query2], max_batch=8, max_tokens=1000)
    assert {id(r) for r, _ in batch} == {id(query), id(query2)}


def test_take_batch_changes_nothing_and_needs_something_to_take():
    r = request(3, 2, 1)
    before = list(r.todo)
    take_batch([r], max_batch=2, max_tokens=1000)
    assert r.todo == before
    assert take_batch([], max_batch=8, max_tokens=1000) == []
    done = request(3)
    done.todo.clear()
    assert take_batch([done], max_batch=8, max_tokens=1000) == []


def test_split_calls_sorts_by_length_into_even_calls():
    a, b = request(9, 1, 5, 3, 7, 2, 8, 4, 6, 10), request(11, 12)
    items = take_batch([a, b], max_batch=32, max_tokens=10_000)
    calls = split_calls(items, call_size=4)
    assert [len(c) for c in calls] == [4, 4, 4]
    lengths = [r.lengths[i] for call in calls for r, i in call]
    assert lengths == sorted(lengths) == list(range(1, 13))
    assert [len(c) for c in split_calls(items[:9], call_size=4)] == [4, 5]
    assert [len(c) for c in split_calls(items[:3], call_size=8)] == [3]


def test_last_call_and_by_owner():
    a, b = request(1, 9), request(5)
    calls = split_calls(take_batch([a, b], 8, 1000), call_size=1)
    assert [[r.lengths[i] for r, i in c] for c in calls] == [[1], [5], [9]]
    assert last_call(calls) == {id(a): 2, id(b): 1}
    groups = by_owner([it for c in calls for it in c])
    assert [[i for _, i in g] for g in groups] == [[0, 1], [0]]


def test_retry_after_is_bounded():
    assert retry_after(0, 0.0) == 1
    assert retry_after(500, 0.0) == 10  # 50 texts/s until a rate is known
    assert retry_after(500, 100.0) == 5
    assert retry_after(10**6, 1.0) == 60


def test_retry_after_counts_on_the_full_calls_a_backed_up_queue_runs():
    # A quiet spell of one-text calls (30 ms each: 33 texts/s), then the queue backs up and runs
    # full calls of 8 (55 ms each: 145 texts/s). 2048 waiting texts take 14 s, not 41.
    rate = DrainRate()
    for _ in range(20):
        rate = learn_rate(rate, 1, 0.030, call_size=8)
    assert retry_after(2048, rate.per_second) == 60  # 61 s, at the 60 s cap
    for _ in range(3):
        rate = learn_rate(rate, 8, 0.055, call_size=8)
    assert retry_after(2048, rate.per_second) == 15  # ceil(2048 / 145.45)
    # Later small calls do not drag it back up.
    rate = learn_rate(rate, 1, 0.030, call_size=8)
    assert retry_after(2048, rate.per_second) == 15
