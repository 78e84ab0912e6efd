"""The foundation model: a Flax NNX encoder-decoder transformer over star tokens.

In the spirit of Leung & Bovy (2024): each vocabulary token t has learned vectors
w_t, b_t (and u_t for its measurement error); a known value x with normalised error s
embeds as ``gelu(w_t x + b_t + u_t log s)``; a requested token embeds as w_t alone.
An encoder of self-attention blocks reads the context (padding masked); a decoder
whose queries are the requested tokens cross-attends to it and gives a mean and a
log-variance per request. Queries do not attend to one another, so a prediction never
depends on what else was requested: a labels -> spectrum query for K tokens costs K
independent small cross-attentions, which is what keeps the emulator fast inside NUTS.

Optionally (``summary_width`` > 0) a pooled summary of the whole context joins every
query: each known token adds a linear embedding ``p_t x + q_t + r_t log s`` to a sum over
the context (a DeepSets pooling: order-free, padding adds nothing), and an MLP maps the
sum to a width-d vector added to each request's w. Attention must learn to form precise
linear combinations of many token values; the pooled sum gives them directly, which is
what an MLP on all inputs at once is good at (docs/model_card.md measures the gain).

Optionally (``head_width`` > 0) each request passes, after the decoder, through one more
residual MLP of that hidden width before the output head: per-token capacity for the
labels -> spectrum direction that leaves attention untouched. Its output is multiplied by a
learned gate that starts at zero (as in ReZero), so a model grown from a saved one computes
the same function at step 0 and the head's share grows only as fast as Adam moves one scalar
(a zero-initialised output layer instead changes every output by ~lr x width per step, which
took a warm start at 3e-4 from a validation NLL of -0.5 to +2.8 in 250 steps).
"""

from dataclasses import asdict, dataclass

import jax
import jax.numpy as jnp
from flax import nnx

__all__ = ["TransformerConfig", "StarTransformer"]

_LOG_ERROR_FLOOR = -7.0  # log of the smallest normalised error the embedding sees


@dataclass(frozen=True)
class TransformerConfig:
    """Sizes of the transformer.

    Attributes:
        n_tokens: Vocabulary size T.
        width: Embedding width d.
        n_heads: Attention heads (width must divide by it).
        n_encoder_layers: Self-attention blocks over the context.
        n_decoder_layers: Cross-attention blocks of the requested tokens.
        mlp_width: Hidden width of each block's MLP.
        embed_errors: Whether the context embedding sees each value's measurement error.
        summary_width: Width of the pooled context summary added to every query (0: none).
        head_width: Hidden width of the residual MLP each request passes through after the
            decoder (0: none).
    """

    n_tokens: int
    width: int = 64
    n_heads: int = 4
    n_encoder_layers: int = 2
    n_decoder_layers: int = 2
    mlp_width: int = 128
    embed_errors: bool = True
    summary_width: int = 0
    head_width: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


class _Attention(nnx.Module):
    def __init__(self, width: int, n_heads: int, rngs: nnx.Rngs):
        self.n_heads = n_heads
        self.query = nnx.Linear(width, width, rngs=rngs)
        self.key_value = nnx.Linear(width, 2 * width, rngs=rngs)
        self.out = nnx.Linear(width, width, rngs=rngs)

    def __call__(self, x, context, context_mask):
        """x [B, Q, d] attends to context [B, C, d] where context_mask [B, C] is True."""
        b, q, d = x.shape
        h = self.n_heads
        queries = self.query(x).reshape(b, q, h, d // h)
        keys, values = jnp.split(self.key_value(context).reshape(b, -1, h, 2 * d // h), 2, axis=-1)
        logits = jnp.einsum("bqhk,bchk->bhqc", queries, keys) / jnp.sqrt(d / h)
        logits = jnp.where(context_mask[:, None, None, :], logits, -1e30)
        weights = jax.nn.softmax(logits, axis=-1)
        attended = jnp.einsum("bhqc,bchk->bqhk", weights, values).reshape(b, q, d)
        return self.out(attended)


class _Block(nnx.Module):
    """Pre-norm attention + MLP block; self-attention when no separate context is given."""

    def __init__(self, config: TransformerConfig, rngs: nnx.Rngs):
        d = config.width
        self.norm_x = nnx.LayerNorm(d, rngs=rngs)
        self.norm_context = nnx.LayerNorm(d, rngs=rngs)
        self.attention = _Attention(d, config.n_heads, rngs)
        self.norm_mlp = nnx.LayerNorm(d, rngs=rngs)
        self.hidden = nnx.Linear(d, config.mlp_width, rngs=rngs)
        self.project = nnx.Linear(config.mlp_width, d, rngs=rngs)

    def __call__(self, x, context, context_mask):
        x = x + self.attention(self.norm_x(x), self.norm_context(context), context_mask)
        return x + self.project(jax.nn.gelu(self.hidden(self.norm_mlp(x))))


class StarTransformer(nnx.Module):
    """Any-to-any predictor over star tokens (normalised units).

    Call with a batch of B stars: ``model(context_index, context_value, context_error,
    context_mask, request_index)`` -> (mean, log_variance), each [B, K].

    Args (of ``__call__``):
        context_index: Vocabulary indices of the known tokens [B, C] (int).
        context_value: Their normalised values [B, C].
        context_error: Their normalised 1-sigma errors [B, C].
        context_mask: True for real context entries, False for padding [B, C].
        request_index: Vocabulary indices of the requested tokens [B, K] (int).
    """

    def __init__(self, config: TransformerConfig, rngs: nnx.Rngs):
        self.config = config
        t, d = config.n_tokens, config.width
        init = nnx.initializers.normal(stddev=1.0)
        self.token_w = nnx.Param(init(rngs.params(), (t, d)))
        self.token_b = nnx.Param(init(rngs.params(), (t, d)))
        self.token_u = nnx.Param(0.1 * init(rngs.params(), (t, d)))
        self.encoder = nnx.List([_Block(config, rngs) for _ in range(config.n_encoder_layers)])
        self.decoder = nnx.List([_Block(config, rngs) for _ in range(config.n_decoder_layers)])
        self.norm_out = nnx.LayerNorm(d, rngs=rngs)
        self.head = nnx.Linear(d, 2, rngs=rngs)
        p = config.summary_width
        if p:
            scale = 1.0 / jnp.sqrt(t)
            self.summary_w = nnx.Param(scale * init(rngs.params(), (t, p)))
            self.summary_b = nnx.Param(scale * init(rngs.params(), (t, p)))
            self.summary_u = nnx.Param(0.1 * scale * init(rngs.params(), (t, p)))
            self.summary_hidden = nnx.Linear(p, p, rngs=rngs)
            self.summary_out = nnx.Linear(p, d, rngs=rngs)
        if config.head_width:
            self.head_norm = nnx.LayerNorm(d, rngs=rngs)
            self.head_hidden = nnx.Linear(d, config.head_width, rngs=rngs)
            self.head_project = nnx.Linear(config.head_width, d, rngs=rngs)
            self.head_gate = nnx.Param(jnp.zeros((1,)))

    def _embed(self, w, b, u, context_index, value, log_error):
        x = w[context_index] * value[..., None] + b[context_index]
        if self.config.embed_errors:
            x = x + u[context_index] * log_error[..., None]
        return x

    def encode(self, context_index, context_value, context_error, context_mask):
        """Encoded context [B, C, d] and its pooled summary [B, d] (None without one);
        padded entries never influence real ones."""
        value = jnp.where(context_mask, context_value, 0.0)
        error = jnp.where(context_mask, context_error, 1.0)
        log_error = jnp.maximum(jnp.log(jnp.maximum(error, 1e-30)), _LOG_ERROR_FLOOR)
        x = jax.nn.gelu(
            self._embed(self.token_w, self.token_b, self.token_u, context_index, value, log_error)
        )
        for block in self.encoder:
            x = block(x, x, context_mask)
        if not self.config.summary_width:
            return x, None
        pooled = self._embed(
            self.summary_w, self.summary_b, self.summary_u, context_index, value, log_error
        )
        pooled = jnp.sum(jnp.where(context_mask[..., None], pooled, 0.0), axis=1)
        hidden = jax.nn.gelu(self.summary_hidden(jax.nn.gelu(pooled)))
        return x, self.summary_out(hidden)

    def decode(self, encoded, context_mask, request_index):
        """(mean, log_variance) [B, K] of the requested tokens given ``encode``'s output."""
        encoded, summary = encoded
        q = self.token_w[request_index]
        if summary is not None:
            q = q + summary[:, None, :]
        for block in self.decoder:
            q = block(q, encoded, context_mask)
        if self.config.head_width:
            head = self.head_project(jax.nn.gelu(self.head_hidden(self.head_norm(q))))
            q = q + self.head_gate * head
        out = self.head(self.norm_out(q))
        return out[..., 0], out[..., 1]

    def __call__(self, context_index, context_value, context_error, context_mask, request_index):
        encoded = self.encode(context_index, context_value, context_error, context_mask)
        return self.decode(encoded, context_mask, request_index)
