"""Moving models and activations between toymi and other libraries (imported lazily: toymi needs none of them)."""
