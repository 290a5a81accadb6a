"""Small language models: tokenizers, corpora, GPT model, training, generation."""
