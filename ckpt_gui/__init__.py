"""ckpt_gui: see inside TensorFlow/Keras checkpoint folders."""
__version__ = "0.1.0"
