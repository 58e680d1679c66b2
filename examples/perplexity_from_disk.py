"""Per-token negative log-likelihood and perplexity of a logits array stored on disk, larger than
memory, streamed through a Dask cluster with logitloss.dask.

The logits are a .npy file of shape (tokens, vocabulary), float32, read through a memory map: each
task opens the file and reads only its chunk (rows x a slice of the vocabulary), so no process
ever holds the array. The vocabulary is chunked too (vocabulary-parallel): per chunk the kernels'
softmax statistics, merged per token by a tree reduction.

    pip install "logitloss[dask]"
    # write a 26.7 GB demo file (52,000 tokens x 128,256 classes), compute, delete it:
    python examples/perplexity_from_disk.py --create --tokens 52000 --path /tmp/logits.npy --delete
    # or on a cluster that can read the file at the same path:
    python examples/perplexity_from_disk.py --path /shared/logits.npy --scheduler tcp://host:8786
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def create(path: str, tokens: int, vocabulary: int, seed: int = 0) -> np.ndarray:
    """Writes demo logits (a peaked, LM-like distribution) and returns the targets. Slab by slab:
    the writer never holds more than one slab either."""
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(tokens, vocabulary))
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, vocabulary, tokens)
    slab = max(1, (256 << 20) // (4 * vocabulary))
    # Random draws cost more than the disk: one slab of draws, shifted along the vocabulary for
    # each slab written.
    draws = rng.standard_normal((slab, vocabulary), dtype=np.float32)
    for start in range(0, tokens, slab):
        stop = min(tokens, start + slab)
        block = np.roll(draws[: stop - start], 7919 * (start // slab), axis=1)
        block[np.arange(stop - start), targets[start:stop]] += 6.0  # the right token usually wins
        out[start:stop] = block
        out.flush()
    del out
    return targets


def read_chunk(path: str, block_id: tuple[int, int], chunks: tuple[int, int]) -> np.ndarray:
    """One chunk of the on-disk logits: a pure function of its position (a lost worker's chunks are
    simply read again)."""
    logits = np.load(path, mmap_mode="r")
    rows = slice(block_id[0] * chunks[0], min(logits.shape[0], (block_id[0] + 1) * chunks[0]))
    columns = slice(block_id[1] * chunks[1], min(logits.shape[1], (block_id[1] + 1) * chunks[1]))
    return np.array(logits[rows, columns])


def peak_resident_bytes() -> int:
    """This process's peak resident set (Linux: ru_maxrss in KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def on_disk_logits(path: str, row_chunk: int, class_chunk: int):
    import dask.array as da

    shape = np.load(path, mmap_mode="r").shape
    chunks = da.core.normalize_chunks((row_chunk, class_chunk), shape)
    return da.map_blocks(
        lambda block_id=None: read_chunk(path, block_id, (row_chunk, class_chunk)),
        chunks=chunks,
        dtype=np.float32,
        meta=np.empty((0, 0), np.float32),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--path", default="logits.npy")
    parser.add_argument("--create", action="store_true", help="write demo logits (and targets) first")
    parser.add_argument("--tokens", type=int, default=52000)
    parser.add_argument("--vocabulary", type=int, default=128256)
    parser.add_argument("--row-chunk", type=int, default=1024)
    parser.add_argument("--class-chunk", type=int, default=32064)
    parser.add_argument("--scheduler", help="address of a running scheduler (default: a LocalCluster)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--delete", action="store_true", help="delete the files afterwards")
    args = parser.parse_args()

    import dask
    from distributed import Client, LocalCluster

    import logitloss
    import logitloss.dask as ld

    targets_path = os.path.splitext(args.path)[0] + ".targets.npy"
    if args.create:
        started = time.perf_counter()
        np.save(targets_path, create(args.path, args.tokens, args.vocabulary))
        print(f"wrote {os.path.getsize(args.path) / 1e9:.1f} GB in {time.perf_counter() - started:.0f} s")
    targets = np.load(targets_path)
    size = os.path.getsize(args.path)
    if args.scheduler:
        client = Client(args.scheduler)
    else:
        client = Client(LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True))
    try:
        logits = on_disk_logits(args.path, args.row_chunk, args.class_chunk)
        nll = ld.cross_entropy(logits, targets, reduction="none")  # per token, lazily
        started = time.perf_counter()
        per_token = nll.compute()
        seconds = time.perf_counter() - started
        mean = float(per_token.astype(np.float64).mean())
        print(f"{logits.shape[0]} tokens x {logits.shape[1]} classes, {size / 1e9:.1f} GB on disk, "
              f"chunks {args.row_chunk} x {args.class_chunk}, {len(client.scheduler_info()['workers'])} workers")
        print(f"per-token NLL in {seconds:.1f} s ({size / seconds / 1e9:.2f} GB/s read): mean {mean:.6f}, "
              f"perplexity {np.exp(mean):.4f}")
        peaks = client.run(peak_resident_bytes)
        print("peak resident memory per worker: " + ", ".join(f"{b / 1e9:.2f} GB" for b in peaks.values()))
        # Spot check: the first rows in memory, with the in-memory function.
        check = np.array(np.load(args.path, mmap_mode="r")[:64])
        expected = logitloss.cross_entropy(check, targets[:64], reduction="none")
        print("first 64 tokens equal the in-memory call:", bool(np.allclose(per_token[:64], expected, rtol=4e-7, atol=0)))
    finally:
        client.close()
        if args.delete:
            for path in (args.path, targets_path):
                os.remove(path)


if __name__ == "__main__":
    main()
