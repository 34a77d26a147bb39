"""VLAs from Hugging Face VLMs: a SmolVLM / Idefics3 checkpoint with OpenVLA-style action tokens as a policy.

- ``spec``: ``vla_actions.json`` (action ids, chunk shape, normalisation) and the prompt.
- ``model``: ``HFVLA`` and ``load_vla`` (refuses a checkpoint that cannot act, in one line).
- ``build``: a small random-init SmolVLM-architecture VLA, built offline, saved with ``save_pretrained``.
- ``policy``: ``HFPolicy``, AR / exact Jacobi / consistency decoding through the engine's HF runner.
- ``train`` / ``distill``: training on collected demonstrations and consistency distillation.
"""
