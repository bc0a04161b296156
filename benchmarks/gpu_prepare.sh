#!/bin/bash
# Prepare what benchmarks/gpu_check.sh needs on the GPU machine, which has no network (docs/benchmarks.md,
# "On a GPU"): wheels of postlab's dependencies its image lacks (for its Python 3.12) in .whl/, SmolLM2's
# tokenizer in .gpu/tokenizer/, and a trimmed copy of wordfreq (the gold rater's word lists: 58 MB whole)
# with its pure-Python needs in .gpu/site/, keeping the six suite languages. Both folders are git-ignored
# through .git/info/exclude; pass them as `carry` to the device (57 MB with the tree's 7 MB: under the 64 MiB a
# device call carries). Run from the repository root, in the venv.
set -euo pipefail
grep -qx '.whl/' .git/info/exclude 2>/dev/null || printf '.whl/\n.gpu/\n' >> .git/info/exclude
rm -rf .whl .gpu && mkdir -p .whl .gpu/tokenizer .gpu/site
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux2014_x86_64 -d .whl pydantic==2.14.4 pydantic_core==2.50.5 annotated-types==0.8.0 \
    typing-inspection==0.4.5 typing_extensions==4.16.0 trl==1.16.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19
python3 -m pip wheel -q --no-deps langdetect==1.0.9 -w .whl
# for `postlab run` there (benchmarks/gpu_postlab_run.sh): the rest of postlab's dependencies with theirs, less what
# the image has (numpy, pyyaml, jinja2, tqdm, requests and their needs) and what .whl/ holds
mkdir -p .gpu/wheels-run
python3 -m pip download -q --only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux2014_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 -d .gpu/wheels-run alembic==1.20.1 fastapi==0.165.0 \
    gguf==0.19.0 httpx==0.29.0 matplotlib==3.11.2 prometheus_client==0.26.0 python-multipart==0.0.34 SQLAlchemy==2.1.9 \
    typer==0.29.2 uvicorn==0.55.0
(cd .gpu/wheels-run && rm -f numpy-* pyyaml-* jinja2-* markupsafe-* tqdm-* packaging-* requests-* urllib3-* \
    charset_normalizer-* idna-* certifi-* pydantic* typing_* annotated_types-*)
cp ~/.cache/postlab/models/smollm2-135m-instruct/{tokenizer*.json,chat_template.jinja,config.json,generation_config.json} .gpu/tokenizer/
site=$(python3 -c "import wordfreq, os; print(os.path.dirname(os.path.dirname(wordfreq.__file__)))")
for pkg in wordfreq ftfy langcodes locate wcwidth; do cp -r "$site/$pkg" .gpu/site/; done
rm -f .gpu/site/wordfreq/data/jieba_zh*.txt  # Chinese only
find .gpu/site/wordfreq/data -name '*.msgpack.gz' ! -regex '.*_\(en\|es\|fr\|de\|it\|pt\)\.msgpack\.gz' -delete
find .gpu/site -name __pycache__ -prune -exec rm -rf {} +
du -sh .whl .gpu
