"""The TensorFlow guide's MLP: Dense 128 relu on 784 inputs, Dense 10 (logits); Adam.

A template is a Python file defining ``build_model()`` (a Keras model, built or buildable) and,
optionally, ``build_optimizer()`` (restores the optimizer's slots and iterations too) and
``sample_input()`` (an input to run the restored model on once).
"""
import keras


def build_model():
    return keras.Sequential([
        keras.Input(shape=(784,)),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(10),
    ])


def build_optimizer():
    return keras.optimizers.Adam()
