"""Variational autoencoders for the paper's digit-image experiment (Shumailov et al., Nature 2024).

`models`: the paper's convolutional MNIST VAE and an MLP VAE for 8x8 digits; `conv`: the stride-2
convolution and transposed convolution with hand-written gradients (fast on the CPU); `train`: the
ELBO, PyTorch-style Adam, jitted training steps, sampling and encoding.
"""

from modelcollapse.vae.conv import conv_down, conv_transpose_reference, conv_up
from modelcollapse.vae.models import ARCHITECTURES, ConvVAE, MLPVAE, build_vae, count_params
from modelcollapse.vae.train import (data_batches, decoder_batches, default_steps_per_call, elbo_loss, encode_means,
                                     make_optimizer, make_train_chunk, make_train_step, sample_images, train)

__all__ = ["ARCHITECTURES", "ConvVAE", "MLPVAE", "build_vae", "conv_down", "conv_transpose_reference", "conv_up",
           "count_params", "data_batches", "decoder_batches", "default_steps_per_call", "elbo_loss", "encode_means",
           "make_optimizer", "make_train_chunk", "make_train_step", "sample_images", "train"]
