#!/usr/bin/env bash
# The project's pretraining command, an old revision and this checkout side by side for the same time
# budget, one process pinned to each core, on the project's raw text; prints steps, tokens and the
# held-out perplexity of each.
#
#     bash benchmarks/pretrain_side_by_side.sh f42bda0 18
set -euo pipefail
old=${1:?git revision of the old way}
minutes=${2:-18}
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$root/.venv/bin/python}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
data="$root/../shared/data/raw"
"$python" "$root/scripts/mix_lines.py" "$data/wnut17_raw_minus_devtest.txt" "$data/intent_utterances.txt" \
  --output "$work/mixed.txt" > /dev/null
mkdir -p "$work/old" "$work/new"
git -C "$root" archive "$old" spacy_elmo | tar -x -C "$work/old"
git -C "$root" archive HEAD spacy_elmo | tar -x -C "$work/new"
run() {  # way core; from inside the tree, because `python -m` puts the working directory first on sys.path
  cd "$work/$1"
  env OMP_NUM_THREADS=1 PYTHONPATH="$work/$1" "$python" -c "import spacy_elmo; print('$1 runs', spacy_elmo.__file__)"
  env OMP_NUM_THREADS=1 PYTHONPATH="$work/$1" taskset -c "$2" "$python" -m spacy_elmo pretrain "$work/mixed.txt" \
    --options "$root/configs/bilm_cpu.json" --output "$work/$1/bilm" --lang en --max-steps 100000 \
    --max-minutes "$minutes" --batch-tokens 1024 --learning-rate 4e-3 --warmup-steps 100 --eval-every 200 \
    --checkpoint-every 200 --threads 1 > "$work/$1.log" 2>&1
}
run old 0 & run new 1 & wait
for way in old new; do
  "$python" -c "import json, sys; s = json.load(open(sys.argv[1])); print(sys.argv[2], s['step'], 'steps', s['tokens_seen'], 'tokens, held-out perplexity', round(s['dev'].get('ppl', float('nan')), 2))" \
    "$work/$way/bilm/summary.json" "$way"
done
