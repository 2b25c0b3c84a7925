"""What a hostile peer's well-formed frames cost the receiver, beside what the same frames cost
before the hardening (issue 12), each in a fresh process of its own.

The receiver is the real ``Replicator`` over a real ``Repo`` on SQLite. Each attack's baseline is
the work the old receiver did with the same bytes, measured here in the same run: loading the
decoding bomb with Automerge; building the full reply a want asks for; covering a batch together
with every parked change; checking all of a batch's tips. The frames come from Mallory's own
builders (benchmarks/mallory), so the benchmark attacks with exactly what the tests do.
"""

from __future__ import annotations

import hashlib
import random
import tempfile
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

from benchmarks.measure import PhaseMemory, log, run_python_workload
from benchmarks.registry import Figure, RunOptions, benchmark
from protocol.clock import FIXED_NOW_MS as NOW_MS

# The example: an ~8 KB saved document that cost 8.7 s and 740 MB to load.
BOMB_CHARS = 8_000_000
QUICK_BOMB_CHARS = 1_000_000
WANT_DOC_CHANGES = 20_000
QUICK_WANT_DOC_CHANGES = 2_000
WANTS = 200
PARKED = 16_000
FRAMES_AFTER_PARKING = 200
TIPS = 4096


class _Victim:
    """Alice: a Replicator over a Repo in a fresh SQLite file, serving one space, with one
    connection from Mallory past her Hello."""

    def __init__(self, directory: str, config: Any = None, *, say_hello: bool = True) -> None:
        import native
        from benchmarks.mallory import hello, mallory
        from protocol.events import Connected, DataReceived
        from protocol.identity import Identity
        from protocol.limits import SyncConfig
        from protocol.replicator import Replicator
        from protocol.space import Genesis
        from store.repo import Repo

        self.native = native
        self.identity = Identity(hashlib.sha256(b"alice").digest())
        genesis = Genesis.create(self.identity, "hostile", NOW_MS, nonce=bytes(16))
        self.space = genesis.space_id
        self.repo = Repo.open(Path(directory) / "store.sqlite", self.identity)
        self.repo.add_space(genesis)
        self.replicator = Replicator(self.identity, self.repo, random.Random(1), [self.space], config or SyncConfig())
        self.mallory = mallory("benchmark")
        self._data = DataReceived
        self.now_ms = NOW_MS
        self.replicator.handle(Connected("mallory", self.mallory.public_key, None), self.now_ms)
        self.hello = hello("benchmark", self.space)
        if say_hello:
            self.receive(self.hello)

    def receive(self, frame: bytes) -> list[Any]:
        return self.replicator.handle(self._data("mallory", frame), self.now_ms)


def _cpu_ms(work: Callable[[], Any]) -> float:
    started = time.process_time()
    work()
    return (time.process_time() - started) * 1000


def bomb_workload(chars: int, receiver: str) -> dict[str, Any]:
    """The decoding bomb: its size, and what receiving it costs ``receiver`` — the Replicator
    now, or Automerge's load (what the old receiver did first with it)."""
    import native
    from benchmarks.mallory import document_reply, mallory, splice_bomb

    saved, _ = splice_bomb(mallory("benchmark"), chars)
    doc = hashlib.sha256(b"bomb").digest()[:16]
    with tempfile.TemporaryDirectory() as directory:
        victim = _Victim(directory)
        frame = document_reply(victim.mallory, victim.space, doc, saved)
        memory = PhaseMemory()
        if receiver == "replicator":
            cpu_ms = _cpu_ms(lambda: victim.receive(frame))
        else:
            cpu_ms = _cpu_ms(lambda: native.Document.load(saved))
        return {"frame_bytes": len(frame), "cpu_ms": cpu_ms, "memory_mb": memory.growth_mb()}


def want_workload(changes: int, wants: int) -> dict[str, Any]:
    """One doc of ``changes`` changes; Mallory asks for all of it ``wants`` times (23 bytes each)."""
    import native
    from benchmarks.mallory import want

    with tempfile.TemporaryDirectory() as directory:
        victim = _Victim(directory)
        doc = hashlib.sha256(b"big").digest()[:16]
        document = victim.repo.document(victim.space, doc)
        text = document.put_object(native.ROOT, "text", "text")
        with victim.repo.group(durable=True):
            for i in range(changes):
                document.splice_text(text, i, 0, "x")
                victim.repo.commit(victim.space, doc, now_ms=NOW_MS)
        victim.repo.close()
        victim = _Victim(directory, say_hello=False)  # cold, as a stranger finds it
        # Mallory's Hello claims she holds nothing: the reply to it is the whole doc, built from
        # the store — what every want cost before replies were cached.
        first_ms = _cpu_ms(lambda: victim.receive(victim.hello))
        frame = want(doc)
        repeats = []
        for _ in range(wants):
            victim.now_ms += 1
            repeats.append(_cpu_ms(lambda: victim.receive(frame)))
        repeats.sort()
        return {
            "want_bytes": len(frame),
            "first_ms": first_ms,
            "repeat_p50_ms": repeats[len(repeats) // 2],
            "repeat_max_ms": repeats[-1],
            "deferred": victim.replicator.stats["replies_deferred"] + victim.replicator.stats["budget_reply_bytes_exhausted"],
        }


def parked_workload(parked: int, frames: int) -> dict[str, Any]:
    """Per-frame cost of Mallory's small signed batches after she parked ``parked`` unsigned
    changes (by a throwaway key) in the same doc, beside the same frames with nothing parked."""
    import native
    from benchmarks.mallory import signed_batch, unsigned_reply
    from protocol.identity import Identity
    from protocol.limits import SyncConfig

    doc = hashlib.sha256(b"parked").digest()[:16]
    results = {}
    for label, count in (("parked", parked), ("clean", 0)):
        with tempfile.TemporaryDirectory() as directory:
            victim = _Victim(directory, SyncConfig.unbudgeted())
            if count:
                victim.receive(unsigned_reply(Identity(hashlib.sha256(b"throwaway").digest()), doc, count))
            document = native.Document(actor=victim.mallory.public_key)
            costs = []
            for i in range(frames):
                document.put(native.ROOT, "n", i)
                document.commit(None, time=NOW_MS // 1000)
                frame = signed_batch(victim.mallory, victim.space, doc, document.get_changes([])[-1:])
                victim.now_ms += 1
                costs.append(_cpu_ms(partial(victim.receive, frame)))
            costs.sort()
            results[f"{label}_p50_ms"] = costs[len(costs) // 2]
    return results


def tips_workload(tips: int, receiver: str) -> dict[str, Any]:
    """A reply with one change by each of ``tips`` throwaway keys under their tips, the last
    forged: the Replicator's cost for a fresh session now, or checking every tip (before)."""
    import native
    from protocol.batch import pack_changes
    from protocol.errors import BadSignature
    from protocol.identity import Identity
    from protocol.tips import SignedTip, TipSignature, coverage
    from protocol.wire import Changes, encode_frame

    with tempfile.TemporaryDirectory() as directory:
        victim = _Victim(directory)
        doc = hashlib.sha256(b"tips").digest()[:16]
        document = native.Document()
        keys = [Identity(hashlib.sha256(b"key %d" % i).digest()) for i in range(tips)]
        for i, key in enumerate(keys):
            document.set_actor(key.public_key)
            document.put(native.ROOT, f"k{i}", i)
            document.commit(None, time=NOW_MS // 1000)
        raws = document.get_changes([])
        decoded = [native.decode_change(raw) for raw in raws]
        signed = [SignedTip.sign(key, victim.space, doc, change.hash) for key, change in zip(keys, decoded, strict=True)]
        signed[-1] = SignedTip(victim.space, doc, keys[-1].public_key, decoded[-1].hash, bytes(64))
        encoding, data = pack_changes(raws)
        frame = encode_frame(Changes(doc, encoding, data, (), tuple(TipSignature(i, t.signature) for i, t in enumerate(signed)), push=False))
        if receiver == "replicator":
            cpu_ms = _cpu_ms(lambda: victim.receive(frame))
        else:

            def check_all() -> None:
                try:
                    coverage(victim.space, doc, decoded, signed, is_stored=lambda change_hash: False)
                except BadSignature:
                    pass  # the forged last tip, found after checking all the others

            cpu_ms = _cpu_ms(check_all)
        return {"frame_bytes": len(frame), "cpu_ms": cpu_ms}


@benchmark("hostile")
def run(options: RunOptions) -> Iterator[Figure]:
    chars = QUICK_BOMB_CHARS if options.quick else BOMB_CHARS
    log(f"hostile: a decoding bomb of {chars:,} characters")
    now = run_python_workload(bomb_workload, chars=chars, receiver="replicator")
    before = run_python_workload(bomb_workload, chars=chars, receiver="automerge_load")
    yield Figure("bomb.frame", now["frame_bytes"], "bytes")
    yield Figure("bomb.cpu", round(now["cpu_ms"], 3), "ms", "automerge_load_before", round(before["cpu_ms"], 1))
    yield Figure("bomb.memory", round(now["memory_mb"], 2), "MB", "automerge_load_before", round(before["memory_mb"], 1))

    changes = QUICK_WANT_DOC_CHANGES if options.quick else WANT_DOC_CHANGES
    log(f"hostile: {WANTS} wants for a doc of {changes:,} changes")
    wants = run_python_workload(want_workload, changes=changes, wants=WANTS)
    yield Figure("want.frame", wants["want_bytes"], "bytes")
    yield Figure("want.repeat_p50", round(wants["repeat_p50_ms"], 3), "ms", "uncached_reply_before", round(wants["first_ms"], 2))
    yield Figure("want.repeat_max", round(wants["repeat_max_ms"], 3), "ms")
    yield Figure("want.deferred", wants["deferred"], "wants")

    log(f"hostile: {FRAMES_AFTER_PARKING} small frames after {PARKED:,} parked unsigned changes")
    parked = run_python_workload(parked_workload, parked=PARKED, frames=FRAMES_AFTER_PARKING)
    yield Figure("parked.frame_p50", round(parked["parked_p50_ms"], 3), "ms", "nothing_parked", round(parked["clean_p50_ms"], 3))

    log(f"hostile: a reply of {TIPS} tips, the last forged, from a fresh key")
    tips_now = run_python_workload(tips_workload, tips=TIPS, receiver="replicator")
    tips_before = run_python_workload(tips_workload, tips=TIPS, receiver="check_every_tip")
    yield Figure("tips.frame", tips_now["frame_bytes"], "bytes")
    yield Figure("tips.cpu", round(tips_now["cpu_ms"], 2), "ms", "check_every_tip_before", round(tips_before["cpu_ms"], 1))
