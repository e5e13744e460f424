"""course_lib: the small shared library of the open course on diffusion language models.

One concept per module (see the README's "course_lib map"):

- ``runtime``      seeding, determinism, device choice, progress bars
- ``viz``          the course's visual language (colours, style, projector mode)
- ``checkpoints``  save/load trained weights with a sha256-verified manifest in ``data/``
- ``schedules``    noise schedules (linear, cosine, quadratic) for DDPM       (chapter 1)
- ``ddpm``         forward process, posterior, loss, ELBO, ancestral and DDIM samplers (chapter 1)
- ``score``        score function, denoising score matching, Langevin dynamics  (chapter 1)
- ``sde``          VP-SDE, reverse-time SDE and probability-flow ODE samplers  (chapter 1)
- ``toy2d``        2-D toy distributions, incl. a Gaussian mixture with analytic density (chapter 1)
- ``digits``       scikit-learn's 8x8 digits: data, a reference classifier     (chapter 1)
- ``mlp``          the small epsilon-prediction MLP used on 2-D data and digits (chapter 1)
- ``train``        the training loop (Algorithm 1) with an EMA of the weights   (chapter 1)
- ``metrics``      sliced Wasserstein distance and its data-vs-data floor       (chapter 1)
- ``d3pm``         D3PM: transition matrices, posterior, hybrid loss, the 1/t identity (chapter 2)
- ``masked``       masked diffusion (MDLM/LLaDA): schedules, SUBS, NELBO, exact toy, samplers (chapters 2-3)
- ``llada``        LLaDA: pretraining/SFT losses, generate() with remasking, likelihood estimators (chapter 3)
- ``facts``        invented people and mother/child facts: the reversal-curse data (chapter 3)
- ``tasks``        checkable tasks: an instruction set (SFT) and a few-shot labelling task (chapter 3)
- ``scaling``      AR and MDM learning curves at three sizes, the compute factor (chapter 3)
- ``language``     the embedded language: a PCFG, exact log-probabilities, splits  (chapters 2-4)
- ``tokenizer``    word- and character-level tokenizers with [PAD]/[MASK]/[EOS]  (chapters 2-4)
- ``textlm``       training, evaluation and sampling loop for the text models  (chapters 2-4)
- ``nn``           one small Transformer (causal / bidirectional / block-causal) (chapters 2-4)
- ``widgets``      interactive demos (ipywidgets) and their static forms        (all chapters)
- ``exercises``    checkers for the chapters' exercises
- ``recipes``      one command per shipped checkpoint: ``./course retrain NAME``
"""

__version__ = "0.1.0"
