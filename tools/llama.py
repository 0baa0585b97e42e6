"""A small Llama-style decoder written out for torch 1.13's ONNX exporter.

RMSNorm, rotary positions computed in the graph from position_ids, SwiGLU,
grouped-query attention with K/V repeated by expand/reshape, and attention
written as matmul + softmax with a -1e9 mask bias (no NaN on padded rows).
The export wrapper has the Hugging Face "decoder with past" I/O.
"""
import math

import torch
from torch import nn

MASK_BIAS = -1e9


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.heads = cfg['num_attention_heads']
        self.kv_heads = cfg['num_key_value_heads']
        self.head_dim = cfg['head_dim']
        hidden = cfg['hidden_size']
        self.q_proj = nn.Linear(hidden, self.heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(hidden, self.kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(hidden, self.kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.heads * self.head_dim, hidden, bias=False)

    def forward(self, x, cos, sin, bias, past_k=None, past_v=None):
        b, s, _ = x.shape
        q = self.q_proj(x).view(b, s, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, s, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, s, self.kv_heads, self.head_dim).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if past_k is not None:
            k = torch.cat((past_k, k), dim=2)
            v = torch.cat((past_v, v), dim=2)
        present = (k, v)
        groups = self.heads // self.kv_heads
        t = k.shape[2]
        k_rep = k[:, :, None, :, :].expand(b, self.kv_heads, groups, t, self.head_dim).reshape(b, self.heads, t, self.head_dim)
        v_rep = v[:, :, None, :, :].expand(b, self.kv_heads, groups, t, self.head_dim).reshape(b, self.heads, t, self.head_dim)
        scores = torch.matmul(q, k_rep.transpose(-1, -2)) / math.sqrt(self.head_dim) + bias
        out = torch.matmul(torch.softmax(scores, dim=-1), v_rep)
        out = out.transpose(1, 2).reshape(b, s, self.heads * self.head_dim)
        return self.o_proj(out), present


class MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        hidden, inter = cfg['hidden_size'], cfg['intermediate_size']
        self.gate_proj = nn.Linear(hidden, inter, bias=False)
        self.up_proj = nn.Linear(hidden, inter, bias=False)
        self.down_proj = nn.Linear(inter, hidden, bias=False)

    def forward(self, x):
        return self.down_proj(nn.functional.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg['hidden_size'], cfg['rms_norm_eps'])
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg['hidden_size'], cfg['rms_norm_eps'])
        self.mlp = MLP(cfg)

    def forward(self, x, cos, sin, bias, past_k=None, past_v=None):
        h, present = self.self_attn(self.input_layernorm(x), cos, sin, bias, past_k, past_v)
        x = x + h
        return x + self.mlp(self.post_attention_layernorm(x)), present


class Llama(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg['vocab_size'], cfg['hidden_size'])
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg['num_hidden_layers']))
        self.norm = RMSNorm(cfg['hidden_size'], cfg['rms_norm_eps'])
        self.lm_head = nn.Linear(cfg['hidden_size'], cfg['vocab_size'], bias=False)
        self.lm_head.weight = self.embed_tokens.weight  # tied
        hd = cfg['head_dim']
        self.register_buffer('inv_freq', 1.0 / (cfg['rope_theta'] ** (torch.arange(0, hd, 2).float() / hd)), persistent=False)
        self.apply(self._init)
        for layer in self.layers:  # GPT-2 style: residual output projections scaled down with depth
            for proj in (layer.self_attn.o_proj, layer.mlp.down_proj):
                nn.init.normal_(proj.weight, std=0.02 / math.sqrt(2 * cfg['num_hidden_layers']))

    @staticmethod
    def _init(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)

    def rotary(self, position_ids):
        freqs = position_ids[:, :, None].float() * self.inv_freq[None, None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos()[:, None, :, :], emb.sin()[:, None, :, :]

    def mask_bias(self, attention_mask, seq_len):
        """[B, 1, S, T]: 0 where query i may see key j (causal and not padding), -1e9 elsewhere."""
        total = attention_mask.shape[1]
        past = total - seq_len
        rows = torch.arange(seq_len, device=attention_mask.device)[:, None] + past
        cols = torch.arange(total, device=attention_mask.device)[None, :]
        causal = (cols <= rows)[None, None, :, :]
        keep = attention_mask[:, None, None, :].bool() & causal
        return (1.0 - keep.float()) * MASK_BIAS

    def forward(self, input_ids, attention_mask, position_ids, past=None):
        x = self.embed_tokens(input_ids)
        cos, sin = self.rotary(position_ids)
        bias = self.mask_bias(attention_mask, input_ids.shape[1])
        presents = []
        for i, layer in enumerate(self.layers):
            pk, pv = (past[2 * i], past[2 * i + 1]) if past is not None else (None, None)
            x, present = layer(x, cos, sin, bias, pk, pv)
            presents.extend(present)
        return self.lm_head(self.norm(x)), presents


class DecoderWithPast(nn.Module):
    """ONNX export wrapper: flat past/present tensors in the Hugging Face naming."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, position_ids, *past):
        logits, presents = self.model(input_ids, attention_mask, position_ids, list(past))
        return (logits, *presents)


def export_onnx(model, cfg, path):
    layers, kv, hd = cfg['num_hidden_layers'], cfg['num_key_value_heads'], cfg['head_dim']
    b, s, p = 2, 3, 4
    input_ids = torch.randint(3, cfg['vocab_size'], (b, s))
    attention_mask = torch.ones(b, p + s, dtype=torch.long)
    position_ids = torch.arange(p, p + s)[None, :].repeat(b, 1)
    past = [torch.randn(b, kv, p, hd) for _ in range(2 * layers)]
    past_names = [f'past_key_values.{i}.{kind}' for i in range(layers) for kind in ('key', 'value')]
    present_names = [f'present.{i}.{kind}' for i in range(layers) for kind in ('key', 'value')]
    dynamic = {
        'input_ids': {0: 'batch_size', 1: 'sequence_length'},
        'attention_mask': {0: 'batch_size', 1: 'total_sequence_length'},
        'position_ids': {0: 'batch_size', 1: 'sequence_length'},
        'logits': {0: 'batch_size', 1: 'sequence_length'},
    }
    for name in past_names:
        dynamic[name] = {0: 'batch_size', 2: 'past_sequence_length'}
    for name in present_names:
        dynamic[name] = {0: 'batch_size', 2: 'total_sequence_length'}
    torch.onnx.export(
        DecoderWithPast(model).eval(),
        (input_ids, attention_mask, position_ids, *past),
        path,
        input_names=['input_ids', 'attention_mask', 'position_ids', *past_names],
        output_names=['logits', *present_names],
        dynamic_axes=dynamic,
        opset_version=17,
        do_constant_folding=False,  # folding would store the tied embedding a second time, transposed
    )
