"""A new family (the exponential distribution, rate by maximum likelihood) and a new regime (a sliding window)."""
