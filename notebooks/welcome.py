# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,slideshow,-all
#     formats: ipynb,py:percent
#     notebook_metadata_filter: kernelspec,jupytext,-jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Welcome: an open course on diffusion language models
#
# From DDPM to LLaDA 2.1 in four chapters, each a notebook you run on a laptop CPU: no GPU, no download. Every
# equation is checked by code, and every claim of the papers is tried at small scale with real numbers, including
# where it does not hold.
#
# **Start here**, then open the chapters in order. Each one runs in about a minute (*Run > Run All Cells*); studying
# one takes an afternoon.
#
# | | chapter | what you build | to study (rough) |
# |---|---|---|---|
# | 1 | [From DDPM to score matching](01_ddpm_score_matching.ipynb) | noising and denoising 2-D points and 8x8 digits; the ELBO, DDIM, the score, SDEs, flow matching, guidance | 3 hours |
# | 2 | [Discrete diffusion: transition matrices, the absorbing state, MDLM](02_discrete_diffusion.ipynb) | diffusion on tokens: D3PM, the [MASK] token, MDLM, on a small language with an exact answer key | 3 hours |
# | 3 | [LLaDA: a masked-diffusion language model](03_llada.ipynb) | LLaDA's training, sampling with remasking, the reversal curse, in-context learning | 3 hours |
# | 4 | [LLaDA 2.0 and 2.1: mixture of experts, AR-to-diffusion conversion, parallel decoding and token editing](04_moe_token_editing.ipynb) | MoE, block diffusion, editing decoders, CAP, RL for diffusion models, KV caches and speed | 4 hours |
#
# ## How a chapter works
#
# - **Intuition, then the maths, then the code.** Each equation is followed by a *Check*: a few lines of code that
#   test it numerically and would fail if it were wrong. Checks and exercises are numbered by section (Check 7.2 is
#   the second check of section 7).
# - **Demos** are interactive figures: drag a slider or pick a setting and the picture changes at once. A demo needs
#   the cells above it to have run: if you see a line of text such as `<Demo ...>` instead of controls, run the cells
#   above it (*Run > Run All Above Selected Cell*), or the whole chapter (*Run > Run All Cells*).
# - **Exercises** ("Your turn") ask you to write one function; the cell below checks it and explains a wrong answer.
#   In these notebooks the solutions are filled in. To work the exercises yourself, start the course in student mode
#   (`python course.py lab --student`): the exercise cells raise `NotImplementedError` until you write them.
# - **Scorecards** at the end of each chapter put the papers' claims beside what the chapter measured.
#
# ## If something does not work
#
# - *A demo shows only text*: run the cells above it (see above). If the controls still do not appear, reload the
#   page once the kernel is idle.
# - *A cell fails with `CheckpointError` or `ArtefactError`*: a shipped file is missing or was changed; the message
#   names the command that remakes it. A git checkout without the `data/` files (for example a partial clone) causes it.
# - *Numbers differ in the last digits from the text*: expected on other CPUs (the README's "Which machines reproduce
#   the outputs"); the checks compare with tolerances.
# - *The course will not start*: run `python course.py setup` and read its last lines; the README's
#   troubleshooting section lists the known causes.
#
