"""The systems that write score files: audio and text models, their training and prediction.

Needs the ``systems`` extra (torch, transformers, peft, bitsandbytes, accelerate, soundfile).
The core, fusion and calibration layers never import this package.
"""
