# The backbone's 1-D parameters (LayerNorm weights and biases, GRN gamma / beta, every conv and
# linear bias): a standard vision-PEFT baseline ("norms-only", BitFit-like), here as patterns
# of LieRAFreezeHook's ``trainable`` (they win over "adapted module: factors only").
norm_patterns = [
    r'backbone\..*\.(bias|gamma|beta)',
    r'backbone\..*norm\d*\.weight',
    r'backbone\.downsample_layers\.\d+\.0\.weight',
]
