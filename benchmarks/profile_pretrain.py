"""Where a pretraining step's time goes: one process of one thread, float32 and bfloat16 autocast, on the
project's first batches, timed and then under ``torch.profiler`` (the busiest operators).

    OMP_WAIT_POLICY=PASSIVE python benchmarks/profile_pretrain.py --options configs/bilm_cpu.json

The step is ``pretrain``'s: the LM's loss, backward, gradient clipping and an Adam step.
"""
import argparse
import time

import torch
from torch.profiler import profile

from bench_pretrain import OPTIONS, TEXTS, first_batches  # benchmarks/ is on sys.path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--options", default=str(OPTIONS["cpu"]))
    parser.add_argument("--steps", type=int, default=30, help="timed steps, after 5 untimed")
    parser.add_argument("--batch-tokens", type=int, default=1024)
    parser.add_argument("--rows", type=int, default=25, help="operators in the profile table")
    args = parser.parse_args()

    from spacy_elmo.bilm import BiLMOptions
    from spacy_elmo.bilm.model import BiLM
    from spacy_elmo.pretraining.lm import BiLMLanguageModel
    from spacy_elmo.pretraining.softmax import default_cutoffs

    torch.set_num_threads(1)
    vocab, batches = first_batches(TEXTS, args.steps + 15, args.batch_tokens)
    torch.manual_seed(0)
    lm = BiLMLanguageModel(BiLM(BiLMOptions.from_file(args.options)), len(vocab), default_cutoffs(len(vocab)), 0.1)
    lm.train()
    optimizer = torch.optim.Adam(lm.parameters(), lr=1e-3)

    def step(batch, dtype: torch.dtype) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
            nll = lm(batch.char_ids, batch.index, batch.word_ids, batch.lengths)
        loss = nll.float().sum() / (2 * batch.n_targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(lm.parameters(), 1.0)
        optimizer.step()

    timed, profiled = batches[5 : 5 + args.steps], batches[5 + args.steps :]
    for dtype in (torch.float32, torch.bfloat16):
        for batch in batches[:5]:
            step(batch, dtype)
        start = time.perf_counter()
        for batch in timed:
            step(batch, dtype)
        seconds = time.perf_counter() - start
        targets = sum(b.n_targets for b in timed)
        print(f"{dtype}: {targets / seconds:,.0f} targets/s on one thread, {seconds / len(timed) * 1000:.1f} ms a step")
        with profile() as prof:
            for batch in profiled:
                step(batch, dtype)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))


if __name__ == "__main__":
    main()
