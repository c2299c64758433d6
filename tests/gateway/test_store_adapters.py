"""Adapters that ModelAdapters manage: routed to the pods their EndpointSlice lists, at once after the
slice says so, and never to a pod the slice dropped, whatever a stale /v1/models answer says."""

from __future__ import annotations

from gateway.store import EndpointStore

A, B = "http://127.0.0.1:1", "http://127.0.0.2:1"


def cards(*ids: str) -> list[dict[str, object]]:
    return [{"id": i} for i in ids]


def routed(store: EndpointStore, model: str) -> set[str]:
    return {e.id for e in store.candidates(model)}


def test_a_slice_routes_at_once_and_drops_at_once() -> None:
    store = EndpointStore()
    store.upsert(A, True)
    store.upsert(B, True)
    for eid in (A, B):
        store.set_models(eid, cards("llama"))
    store.set_adapter_endpoints("sql", [A])             # loaded and verified on A: no /v1/models refresh needed
    assert routed(store, "sql") == {A}
    store.set_models(B, cards("llama", "sql"))           # B lists it too, but its slice does not: not routed
    assert routed(store, "sql") == {A}
    asked = store.next_seq()
    store.set_adapter_endpoints("sql", [])               # drained before the unload
    store.set_models(A, cards("llama", "sql"), asked)    # an answer asked before the drain changes nothing
    assert routed(store, "sql") == set()


def test_an_engine_that_lost_the_adapter_is_dropped_on_its_next_models_answer() -> None:
    store = EndpointStore()
    store.upsert(A, True)
    store.set_adapter_endpoints("sql", [A])
    store.set_models(A, cards("llama"))                  # asked after the slice: the engine restarted
    assert routed(store, "sql") == set()
    store.set_models(A, cards("llama", "sql"))           # reloaded
    assert routed(store, "sql") == {A}


def test_after_the_slice_is_deleted_only_fresh_models_answers_count() -> None:
    store = EndpointStore()
    store.upsert(A, True)
    asked = store.next_seq()
    store.set_adapter_endpoints("sql", [A])
    store.drop_adapter("sql")
    store.set_models(A, cards("llama", "sql"), asked)    # stale: asked while it was still loaded
    assert routed(store, "sql") == set()
    store.set_models(A, cards("llama", "sql"))           # loaded by hand later: routed as any engine model
    assert routed(store, "sql") == {A}


def test_without_modeladapters_models_come_from_v1_models() -> None:
    store = EndpointStore()
    store.upsert(A, True)
    store.set_models(A, cards("llama", "by-hand"))
    assert routed(store, "by-hand") == {A}
