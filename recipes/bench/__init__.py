"""Every benchmark of the suite, in one package.

`tzoo bench EXP.yaml` (cli.py and the modules it drives) measures what each variant of an
experiment costs. Three yardsticks with fixed shapes and no experiment file sit beside it, run
as modules so that they work from an installed package too:

    python -m tzoo.recipes.bench.zoo_vs_gpt          # the zoo's decoder vs a monolithic GPT
    python -m tzoo.recipes.bench.nanogpt_reference   # nanoGPT's CPU recipe without the suite
    python -m tzoo.recipes.bench.corpus_scale        # token files vs in-memory, by corpus size
    python -m tzoo.recipes.bench.peer                # the zoo vs nanoGPT's own model

Their results go to reports/bench/ and reports/nanogpt-shakespeare-cpu/.
"""
