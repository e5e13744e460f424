"""course_lib: the small shared library of the open course on diffusion language models.

One concept per module, in layers. Foundations: ``runtime``, ``viz``, ``checks``, ``training``, ``checkpoints``,
``artefacts``, ``language``, ``tokenizer``, ``nn``, ``moe``. Then each chapter's algorithms: chapter 1 ``schedules``,
``ddpm``, ``score``, ``sde``, ``flow``, ``guidance``, ``toy2d``, ``mlp``, ``metrics``, ``digits``; chapter 2 ``d3pm``, ``masked``,
``textlm``, ``compute_study``; chapter 3 ``llada``, ``facts``, ``tasks``, ``scaling``; chapter 4 ``params``, ``moe_study``, ``memorise``,
``blockdiff``, ``decoding``, ``cap``, ``editing``, ``rl``, ``arith``, ``arith_study``,
``entities``, ``caching``, ``copy_task``, ``speed``. Each chapter's ``demos`` and ``exercises``.
On top, ``recipes`` (how every shipped file is made) and ``gallery`` (lecture mode). The README's "How the code
is organised" has the full table.
"""

__version__ = "0.1.0"
