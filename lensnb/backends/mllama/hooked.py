"""``HookedMllama``: Llama 3.2 Vision with TransformerLens hook names.

Why a lensnb hooked model and not a TransformerBridge adapter: the bridge wraps Hugging Face
*modules* and hooks their inputs and outputs. Mllama's cross-attention layers multiply by
``tanh(gate)`` parameters inside the layer's forward (no module to wrap, so gates could be
neither read nor zeroed through a hook), delegated HF attention only exposes its pattern after the
fact (editing ``hook_pattern`` would not change the output), and HF skips the cross-attention
layers entirely when there is no image. So the text decoder's layer loop is written here, from
the HF submodules and weights (no copy), with HookPoints at every step; the vision encoder runs
as HF wrote it, with HookPoints fed by forward hooks.

Hook names (text decoder, layer ``i`` of ``n_layers``, self- and cross-attention layers alike)::

    hook_embed                              [batch, pos, d_model]
    rotary_emb.hook_cos / hook_sin          [batch, pos, d_head]
    blocks.i.hook_resid_pre/mid/post        [batch, pos, d_model]
    blocks.i.ln1.hook_out / ln2.hook_out    [batch, pos, d_model]
    blocks.i.attn.hook_q                    [batch, pos, n_heads, d_head]
    blocks.i.attn.hook_k / hook_v           [batch, key_pos, n_kv_heads, d_head]
    blocks.i.attn.hook_rot_q / hook_rot_k   self-attention: after RoPE
    blocks.i.attn.hook_q_normed / _k_normed cross-attention: after the q/k RMSNorm
    blocks.i.attn.hook_attn_scores          [batch, n_heads, pos, key_pos] (mask added)
    blocks.i.attn.hook_pattern              [batch, n_heads, pos, key_pos]
    blocks.i.attn.hook_z                    [batch, pos, n_heads, d_head]
    blocks.i.hook_attn_out / hook_mlp_out   [batch, pos, d_model] (what is added to the residual)
    blocks.i.mlp.hook_pre / hook_post       [batch, pos, d_mlp] (gate pre-activation; act*up)
    blocks.i.hook_attn_gate / hook_mlp_gate [1] tanh(gate), cross-attention layers only
    ln_final.hook_out, unembed.hook_out

In cross-attention layers ``key_pos`` runs over image tokens, ordered
``(image, tile, patch)`` with patch 0 the tile's class token (see ``images.ImageLayout``), and
``hook_attn_out = tanh(attn_gate) * o_proj(z)``, ``hook_mlp_out = tanh(mlp_gate) * mlp(...)``.

Vision (``image_batch = batch * n_images``; ``vision_pos = tiles * padded patches``)::

    vision_encoder.blocks.j.hook_out         [image_batch, vision_pos, d_vision] local layers
    vision_encoder.blocks.j.attn.hook_pattern [image_batch, n_heads, vision_pos, vision_pos]
    vision_encoder.global_blocks.j.hook_out (and .attn.hook_pattern), gated global layers
    vision_encoder.hook_out                  [batch, n_images, tiles, patches, vision_output_dim]
    vision_projector.hook_out                [batch, image_tokens, d_model]

Vision attention patterns are read after the fact (editing them does not change the output);
everything else is edited in place.

Generation (``lens.generate``/``lens.steps``) passes a ``decoding.MllamaCache``: self-attention
keys/values are appended per step (hooks see the new positions only, ``hook_pattern``
``[batch, n_heads, new, cached + new]``); a cross-attention layer's ``hook_k``/``hook_v`` fire on
the pass with the image only, later steps reuse those keys/values, and its ``hook_pattern`` is
``[batch, n_heads, new, image_tokens]`` every step.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn
from transformer_lens.hook_points import HookPoint
from transformer_lens.HookedRootModule import HookedRootModule

from ...core.errors import (
    ImageInputError,
    ImageTokenError,
    InputError,
    InputTypeError,
    UnsupportedFeatureError,
)
from ...core.tokens import check_tokens
from .decoding import MllamaCache, causal_mask


class _Norm(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.hook_out = HookPoint()


class _Attn(nn.Module):
    def __init__(self, cross: bool) -> None:
        super().__init__()
        self.hook_q = HookPoint()
        self.hook_k = HookPoint()
        self.hook_v = HookPoint()
        if cross:
            self.hook_q_normed = HookPoint()
            self.hook_k_normed = HookPoint()
        else:
            self.hook_rot_q = HookPoint()
            self.hook_rot_k = HookPoint()
        self.hook_attn_scores = HookPoint()
        self.hook_pattern = HookPoint()
        self.hook_z = HookPoint()


class _MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.hook_pre = HookPoint()
        self.hook_post = HookPoint()


class _Block(nn.Module):
    """The hook points of one text decoder layer (no weights: those stay in the HF model)."""

    def __init__(self, cross: bool) -> None:
        super().__init__()
        self.cross = cross
        self.hook_resid_pre = HookPoint()
        self.ln1 = _Norm()
        self.attn = _Attn(cross)
        self.hook_attn_out = HookPoint()
        self.hook_resid_mid = HookPoint()
        self.ln2 = _Norm()
        self.mlp = _MLP()
        self.hook_mlp_out = HookPoint()
        self.hook_resid_post = HookPoint()
        if cross:
            self.hook_attn_gate = HookPoint()
            self.hook_mlp_gate = HookPoint()


class _VisionLayer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.hook_out = HookPoint()
        self.attn = _VisionAttn()


class _VisionAttn(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.hook_pattern = HookPoint()


class _Vision(nn.Module):
    def __init__(self, n_local: int, n_global: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(_VisionLayer() for _ in range(n_local))
        self.global_blocks = nn.ModuleList(_VisionLayer() for _ in range(n_global))
        self.hook_out = HookPoint()


class _Out(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.hook_out = HookPoint()


class _Rotary(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.hook_cos = HookPoint()
        self.hook_sin = HookPoint()


def _parts(hf_model: nn.Module) -> tuple[nn.Module, nn.Module | None, nn.Module | None,
                                         nn.Module]:
    """``(text model, vision model, projector, lm_head)`` of a Mllama HF model."""
    if hasattr(hf_model, "model") and hasattr(hf_model.model, "language_model"):
        m = hf_model.model  # MllamaForConditionalGeneration
        return m.language_model, m.vision_model, m.multi_modal_projector, hf_model.lm_head
    if hasattr(hf_model, "model") and hasattr(hf_model.model, "cross_attention_layers"):
        return hf_model.model, None, None, hf_model.lm_head  # MllamaForCausalLM
    raise InputTypeError(f"expected a Mllama model, got {type(hf_model).__name__}")


class HookedMllama(HookedRootModule):
    """A Mllama model (``MllamaForConditionalGeneration`` or ``MllamaForCausalLM``) with hooks.

    Duck-types the parts of TransformerLens's ``TransformerBridge`` that ``Lens`` uses
    (``hook_dict``, ``run_with_cache``, ``run_with_hooks``, ``hooks``, ``to_tokens``,
    ``tokenizer``, ``original_model``, ``cfg``). Weights are the HF model's own tensors.
    """

    def __init__(self, hf_model: nn.Module, tokenizer: Any, processor: Any = None) -> None:
        super().__init__()
        self.original_model = hf_model
        self.tokenizer = tokenizer
        self.processor = processor
        text, vision, _, _ = _parts(hf_model)
        tcfg = text.config
        self.cross_layers: list[int] = list(tcfg.cross_attention_layers)
        n_layers = tcfg.num_hidden_layers
        self.hook_embed = HookPoint()
        self.rotary_emb = _Rotary()
        self.blocks = nn.ModuleList(_Block(i in self.cross_layers) for i in range(n_layers))
        self.ln_final = _Norm()
        self.unembed = _Out()
        if vision is not None:
            self.vision_encoder = _Vision(len(vision.transformer.layers),
                                          len(vision.global_transformer.layers))
            self.vision_projector = _Out()
        config = hf_model.config
        self.image_token_id: int | None = getattr(config, "image_token_id", None)
        self.cfg = SimpleNamespace(
            n_layers=n_layers, n_heads=tcfg.num_attention_heads,
            n_key_value_heads=tcfg.num_key_value_heads, d_model=tcfg.hidden_size,
            d_head=tcfg.hidden_size // tcfg.num_attention_heads, d_vocab=tcfg.vocab_size,
            n_ctx=tcfg.max_position_embeddings, use_split_qkv_input=False,
            cross_attention_layers=self.cross_layers, default_prepend_bos=True,
        )
        self.setup()

    # ------------------------------------------------------------------ bridge-like API
    @property
    def has_vision(self) -> bool:
        return hasattr(self, "vision_encoder")

    def set_use_split_qkv_input(self, enabled: bool) -> None:
        if enabled:
            raise UnsupportedFeatureError(
                "split-QKV inputs (hook_q_input/hook_k_input) are not available for Llama 3.2 "
                "Vision models; use blocks.{i}.ln1.hook_out (the attention input) instead"
            )

    def to_tokens(self, text: str | Sequence[str], prepend_bos: bool | None = None,
                  padding_side: str | None = None, truncate: bool = False) -> torch.Tensor:
        """Token ids ``[batch, pos]``; BOS first unless ``prepend_bos=False``."""
        texts = [text] if isinstance(text, str) else list(text)
        enc = self.tokenizer(texts, return_tensors="pt", padding=True,
                             padding_side=padding_side or "right",
                             add_special_tokens=False)
        ids = enc["input_ids"]
        bos = self.tokenizer.bos_token_id
        if prepend_bos is not False and bos is not None:
            ids = torch.cat([torch.full((ids.shape[0], 1), bos, dtype=ids.dtype), ids], dim=1)
        return ids

    # ------------------------------------------------------------------ generation
    def new_cache(self) -> MllamaCache:
        """An empty decoding state for ``forward(..., cache=...)`` (``lens.generate`` makes one
        per generation)."""
        return MllamaCache.empty(_parts(self.original_model)[0].config)

    def final_modules(self) -> tuple[nn.Module, nn.Module]:
        """The final norm and the unembedding (Hugging Face modules, no hooks)."""
        text, _, _, lm_head = _parts(self.original_model)
        return text.norm, lm_head

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        input_ids: torch.Tensor,
        *,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        aspect_ratio_ids: torch.Tensor | None = None,
        aspect_ratio_mask: torch.Tensor | None = None,
        cross_attention_mask: torch.Tensor | None = None,
        cache: MllamaCache | None = None,
        return_type: str | None = "logits",
    ) -> torch.Tensor:
        """Logits ``[batch, pos, d_vocab]``. Without ``pixel_values`` (and no image in ``cache``)
        the cross-attention layers are skipped, as in Hugging Face's forward. ``pixel_values``
        etc. come from the Mllama processor (``images.model_inputs``).

        With ``cache`` (``new_cache()``): ``input_ids`` are the new tokens only; self-attention
        keys/values are appended to it, cross-attention keys/values are computed on the pass
        that has ``pixel_values`` and reused after; ``attention_mask`` covers cached + new
        positions; ``cross_attention_mask`` (new positions) defaults to repeating the last
        fed token's row. ``position_ids`` default to ``len(cache) + arange(pos)``.
        """
        if return_type not in ("logits", None):
            raise InputError(f"return_type {return_type!r} is not supported: use 'logits'")
        text, vision, projector, lm_head = _parts(self.original_model)
        input_ids = check_tokens(input_ids, text.embed_tokens.num_embeddings,
                                 model="this Llama 3.2 Vision model")  # [batch, pos]
        seen_image = cache is not None and cache.has_image
        n_image_tokens = (0 if self.image_token_id is None
                          else int((input_ids == self.image_token_id).sum()))
        if pixel_values is None and n_image_tokens:
            raise ImageTokenError(
                f"the text holds {n_image_tokens} <|image|> token(s) but no image was given: "
                "pass images=[PIL.Image, ...] (one per <|image|>), or remove the <|image|> tokens"
            )
        if pixel_values is not None and vision is None:
            raise UnsupportedFeatureError("this is a text-only model: it takes no images")
        if pixel_values is not None and seen_image:
            raise ImageInputError("this cache already holds an image; images come with the "
                                  "prompt, on the first pass only")

        x = self.hook_embed(text.embed_tokens(input_ids))  # [batch, pos, d_model]
        b, p, _ = x.shape
        cross_states = None
        if pixel_values is not None:
            if cross_attention_mask is None or aspect_ratio_ids is None:
                raise ImageInputError("pixel_values need aspect_ratio_ids and cross_attention_mask "
                                      "(use the Mllama processor: lens(text, images=[...]))")
            cross_states = self._vision(vision, projector, pixel_values, aspect_ratio_ids,
                                        aspect_ratio_mask, text.config.hidden_size)
        elif seen_image and cross_attention_mask is None:
            cross_attention_mask = cache.cross_row.expand(-1, p, -1, -1)  # type: ignore[union-attr]
        cross_mask = row_mask = None
        if cross_states is not None or seen_image:
            from transformers.models.mllama.modeling_mllama import _prepare_cross_attention_mask

            cross_mask, row_mask = _prepare_cross_attention_mask(
                cross_attention_mask, num_vision_tokens=vision.num_patches, dtype=x.dtype)
            if cache is not None:
                cache.cross_row = cross_attention_mask[:, -1:]

        past = len(cache) if cache is not None else 0
        if position_ids is None:
            position_ids = torch.arange(past, past + p, device=x.device).unsqueeze(0)
        cos, sin = text.rotary_emb(x, position_ids=position_ids)
        cos, sin = self.rotary_emb.hook_cos(cos), self.rotary_emb.hook_sin(sin)
        causal = causal_mask(attention_mask, b, p, past, x.dtype, x.device)
        for i, layer in enumerate(text.layers):
            hooks = self.blocks[i]
            if hooks.cross:
                if cross_mask is None:
                    continue  # as in HF: no image, no cross-attention
                x = self._cross_block(i, layer, hooks, x, cross_states, cross_mask, row_mask,
                                      cache)
            else:
                x = self._self_block(i, layer, hooks, x, cos, sin, causal, cache)
        x = self.ln_final.hook_out(text.norm(x))
        return self.unembed.hook_out(lm_head(x))  # [batch, pos, d_vocab]

    def _self_block(self, i: int, layer: nn.Module, hooks: _Block, x: torch.Tensor,
                    cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor,
                    cache: MllamaCache | None) -> torch.Tensor:
        from transformers.models.mllama.modeling_mllama import apply_rotary_pos_emb

        attn = layer.self_attn
        x = hooks.hook_resid_pre(x)
        h = hooks.ln1.hook_out(layer.input_layernorm(x))
        b, p, _ = h.shape
        q = hooks.attn.hook_q(attn.q_proj(h).view(b, p, attn.num_heads, attn.head_dim))
        k = hooks.attn.hook_k(attn.k_proj(h).view(b, p, attn.num_key_value_heads, attn.head_dim))
        v = hooks.attn.hook_v(attn.v_proj(h).view(b, p, attn.num_key_value_heads, attn.head_dim))
        q, k = apply_rotary_pos_emb(q, k, cos, sin, unsqueeze_dim=2)
        q, k = hooks.attn.hook_rot_q(q), hooks.attn.hook_rot_k(k)
        if cache is not None:
            k, v = cache.update(i, k, v)  # [batch, past + pos, n_kv, d_head]
        z = _attend(hooks.attn, q, k, v, mask, attn.scaling)  # [batch, pos, n_heads, d_head]
        out = hooks.hook_attn_out(attn.o_proj(z.reshape(b, p, -1)))
        x = hooks.hook_resid_mid(x + out)
        m = _mlp(hooks, layer, hooks.ln2.hook_out(layer.post_attention_layernorm(x)))
        return hooks.hook_resid_post(x + hooks.hook_mlp_out(m))

    def _cross_block(self, i: int, layer: nn.Module, hooks: _Block, x: torch.Tensor,
                     cross: torch.Tensor | None, mask: torch.Tensor, row_mask: torch.Tensor,
                     cache: MllamaCache | None) -> torch.Tensor:
        attn = layer.cross_attn
        x = hooks.hook_resid_pre(x)
        h = hooks.ln1.hook_out(layer.input_layernorm(x))
        b, p, _ = h.shape
        q = hooks.attn.hook_q(attn.q_proj(h).view(b, p, attn.num_heads, attn.head_dim))
        if cross is None:  # a later step: the image's keys/values were kept
            k, v = cache.cross[i]  # type: ignore[union-attr]
        else:
            s = cross.shape[1]
            k = hooks.attn.hook_k(
                attn.k_proj(cross).view(b, s, attn.num_key_value_heads, attn.head_dim))
            v = hooks.attn.hook_v(
                attn.v_proj(cross).view(b, s, attn.num_key_value_heads, attn.head_dim))
            k = hooks.attn.hook_k_normed(attn.k_norm(k))
            if cache is not None:
                cache.cross[i] = (k, v)
        q = hooks.attn.hook_q_normed(attn.q_norm(q))
        z = _attend(hooks.attn, q, k, v, mask, attn.scaling)  # [batch, pos, n_heads, d_head]
        gate_a = hooks.hook_attn_gate(layer.cross_attn_attn_gate.tanh())  # [1]
        out = hooks.hook_attn_out(gate_a * attn.o_proj(z.reshape(b, p, -1)))
        x = hooks.hook_resid_mid(x + out)
        m = _mlp(hooks, layer, hooks.ln2.hook_out(layer.post_attention_layernorm(x)))
        if row_mask is not None:
            m = row_mask[:, 0] * m  # text rows that see no image get no MLP update
        gate_m = hooks.hook_mlp_gate(layer.cross_attn_mlp_gate.tanh())  # [1]
        return hooks.hook_resid_post(x + hooks.hook_mlp_out(gate_m * m))

    def _vision(self, vision: nn.Module, projector: nn.Module, pixel_values: torch.Tensor,
                aspect_ratio_ids: torch.Tensor, aspect_ratio_mask: torch.Tensor | None,
                d_model: int) -> torch.Tensor:
        """Image tokens for cross-attention ``[batch, n_images * tiles * patches, d_model]``."""
        handles = []

        def route(point: HookPoint):
            return lambda _mod, _inp, out: point(out)

        def pattern(point: HookPoint):
            def fire(_mod, _inp, out):
                if isinstance(out, tuple) and len(out) > 1 and isinstance(out[1], torch.Tensor):
                    point(out[1])

            return fire

        pairs = [(vision.transformer.layers, self.vision_encoder.blocks),
                 (vision.global_transformer.layers, self.vision_encoder.global_blocks)]
        for layers, points in pairs:
            for layer, hp in zip(layers, points, strict=True):
                handles.append(layer.register_forward_hook(route(hp.hook_out)))
                handles.append(layer.self_attn.register_forward_hook(
                    pattern(hp.attn.hook_pattern)))
        if aspect_ratio_mask is None:
            aspect_ratio_mask = torch.ones(pixel_values.shape[:3], dtype=torch.long,
                                           device=pixel_values.device)
        try:
            out = vision(pixel_values=pixel_values, aspect_ratio_ids=aspect_ratio_ids,
                         aspect_ratio_mask=aspect_ratio_mask).last_hidden_state
        finally:
            for handle in handles:
                handle.remove()
        out = self.vision_encoder.hook_out(out)  # [batch, n_images, tiles, patches, d_out]
        b = out.shape[0]
        return self.vision_projector.hook_out(projector(out).reshape(b, -1, d_model))


def _attend(hooks: _Attn, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
            mask: torch.Tensor | None, scaling: float) -> torch.Tensor:
    """Eager attention with hooks. q ``[b, pos, n_heads, d]``, k/v ``[b, key_pos, n_kv, d]``
    -> z ``[b, pos, n_heads, d]``. Query head ``h`` reads KV head ``h // group_size``."""
    group = q.shape[2] // k.shape[2]
    qh = q.transpose(1, 2)  # [b, n_heads, pos, d]
    kh = k.transpose(1, 2).repeat_interleave(group, dim=1)  # [b, n_heads, key_pos, d]
    vh = v.transpose(1, 2).repeat_interleave(group, dim=1)
    scores = torch.matmul(qh, kh.transpose(2, 3)) * scaling
    if mask is not None:
        scores = scores + mask
    scores = hooks.hook_attn_scores(scores)  # [b, n_heads, pos, key_pos]
    pattern = hooks.hook_pattern(torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype))
    return hooks.hook_z(torch.matmul(pattern, vh).transpose(1, 2))  # [b, pos, n_heads, d]


def _mlp(hooks: _Block, layer: nn.Module, h: torch.Tensor) -> torch.Tensor:
    mlp = layer.mlp
    pre = hooks.mlp.hook_pre(mlp.gate_proj(h))  # [batch, pos, d_mlp]
    post = hooks.mlp.hook_post(mlp.act_fn(pre) * mlp.up_proj(h))
    return mlp.down_proj(post)
