"""Model factory: load any HF causal LM, add SID tokens, train only new rows, build the tiny Qwen3.

Real runs load e.g. ``Qwen/Qwen3-1.7B``; the offline default is the tiny Qwen3-architecture model of
``scripts/make_tiny_model.py``. Everything returns ordinary transformers objects.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Optional, Sequence

import torch

from ..sid.spelling import is_sid_token
from .chat_template import ENDOFTEXT, IM_END

#: sampling fields a checkpoint's generation_config may carry (Qwen3 ships do_sample/top_k/top_p/temperature)
SAMPLING_FIELDS = ("temperature", "top_k", "top_p", "min_p", "typical_p", "epsilon_cutoff", "eta_cutoff")
_DTYPES = {"auto": "auto", "bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16,
           "float16": torch.float16, "fp32": torch.float32, "float32": torch.float32}
#: std of the noise added to new embedding rows, relative to the std of the existing rows
NEW_ROW_NOISE = 0.02


class ModelLoadError(OSError):
    """A model or tokenizer cannot be loaded; the message names the path and what is missing."""


def resolve_dtype(dtype):
    """``None``/"auto" -> "auto" (the checkpoint's dtype); "bf16"|"fp16"|"fp32" (or torch dtypes) -> torch dtype."""
    if dtype is None:
        return "auto"
    if isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str) and dtype.lower() in _DTYPES:
        return _DTYPES[dtype.lower()]
    raise ValueError(f"unknown dtype {dtype!r}: use one of {sorted(_DTYPES)}")


def looks_local(path: str) -> bool:
    """True when ``path`` can only be a folder (not a hub id like ``Qwen/Qwen3-1.7B``)."""
    s = str(path)
    return (os.path.isabs(s) or s.startswith((".", "~")) or s.endswith(("/", os.sep))
            or s.count("/") > 1 or "\\" in s or os.path.exists(s))


def _check_local(path: str) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise ModelLoadError(f"model folder not found: {p} (a local path is never looked up on the hub)")
    if not p.is_dir():
        raise ModelLoadError(f"model path is not a folder: {p}")
    if not (p / "config.json").is_file():
        raise ModelLoadError(f"{p}: no config.json, not a Hugging Face model folder "
                             f"(make one with scripts/make_tiny_model.py or save_pretrained)")
    return p


def neutral_generation_config(model) -> dict:
    """Switch off sampling in ``model.generation_config``; return ``{field: old value}`` of what changed.

    A checkpoint's ``generation_config.json`` can carry ``do_sample: true``, ``top_k``, ``top_p`` and
    ``temperature`` (Qwen3's does). Left in place, beam search silently becomes beam sampling, so every
    loaded model goes through this one function; callers that sample pass
    their decoding parameters explicitly.
    """
    gc = getattr(model, "generation_config", None)
    if gc is None:
        return {}
    changed = {}
    if getattr(gc, "do_sample", None):
        changed["do_sample"] = gc.do_sample
    gc.do_sample = False
    for name in SAMPLING_FIELDS:
        if getattr(gc, name, None) is not None:
            changed[name] = getattr(gc, name)
            setattr(gc, name, None)
    return changed


def _ensure_pad_token(model, tokenizer) -> None:
    if tokenizer.pad_token is None:
        vocab = tokenizer.get_vocab()
        tokenizer.pad_token = ENDOFTEXT if ENDOFTEXT in vocab else tokenizer.eos_token
        if tokenizer.pad_token is None:
            raise ModelLoadError("tokenizer has neither a pad token, '<|endoftext|>' nor an eos token")
    model.config.pad_token_id = tokenizer.pad_token_id
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id


def load_model_and_tokenizer(path, dtype=None, device="cpu", trust_remote_code: bool = False,
                             padding_side: Optional[str] = None):
    """Load ``(model, tokenizer)`` from a local folder or a hub id, ready for training or decoding.

    A path that looks local is checked first and never sent to the hub (clear ``ModelLoadError``);
    a hub id that is neither cached nor downloadable raises ``ModelLoadError`` naming it. The pad
    token is set when missing (``<|endoftext|>`` if present, else eos) and sampling fields of the
    generation config are neutralised (:func:`neutral_generation_config`).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer
    torch_dtype = resolve_dtype(dtype)
    src = str(path)
    if looks_local(src):
        src = str(_check_local(src))
    try:
        tokenizer = AutoTokenizer.from_pretrained(src, trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(src, dtype=torch_dtype, trust_remote_code=trust_remote_code)
    except OSError as e:
        raise ModelLoadError(f"cannot load model {src!r}: {e}") from e
    if padding_side is not None:
        tokenizer.padding_side = padding_side
    _ensure_pad_token(model, tokenizer)
    neutral_generation_config(model)
    return model.to(device), tokenizer


def embeddings_tied(model) -> bool:
    out = model.get_output_embeddings()
    return out is not None and out.weight is model.get_input_embeddings().weight


def _init_rows(weight: torch.Tensor, rows: torch.Tensor, n_old: int, gen: torch.Generator) -> None:
    """Set ``weight[rows]`` to the mean of ``weight[:n_old]`` plus noise (NEW_ROW_NOISE x their std)."""
    old = weight[:n_old].float()
    mean, std = old.mean(0), old.std(0)
    noise = torch.randn((len(rows), weight.shape[1]), generator=gen) * std * NEW_ROW_NOISE
    weight[rows] = (mean + noise).to(weight.dtype).to(weight.device)


@torch.no_grad()
def add_sid_tokens(model, tokenizer, sid_tokens: Sequence[str], seed: int = 0,
                   pad_to_multiple_of: Optional[int] = None) -> int:
    """Add SID tokens as ordinary (non-special) tokens and give them embedding rows; return how many were new.

    Tokens already in the vocabulary are left alone (so stage 2 on a stage-1 checkpoint adds 0). New
    input rows (and output rows, unless tied to the input ones, as in Qwen3 <= 4B) start at the mean
    of the existing vocabulary's rows plus small noise, so the new tokens neither dominate nor vanish
    from the softmax. Rows beyond ``len(tokenizer)`` that a checkpoint already has (Qwen pads its
    embedding to a round size) are reused before resizing.
    """
    from tokenizers import AddedToken
    bad = [t for t in sid_tokens if not is_sid_token(t)]
    if bad:
        raise ValueError(f"add_sid_tokens: not SID tokens (expected like '<a_12>'): {bad[:5]!r}")
    vocab = tokenizer.get_vocab()
    new = [t for t in dict.fromkeys(sid_tokens) if t not in vocab]
    if not new:
        return 0
    n_old = len(tokenizer)
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in new])
    rows = torch.tensor(tokenizer.convert_tokens_to_ids(new))
    if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tokenizer), pad_to_multiple_of=pad_to_multiple_of, mean_resizing=False)
    gen = torch.Generator().manual_seed(seed)
    _init_rows(model.get_input_embeddings().weight, rows, n_old, gen)
    out = model.get_output_embeddings()
    if out is not None and not embeddings_tied(model):
        _init_rows(out.weight, rows, n_old, gen)
        if getattr(out, "bias", None) is not None:
            out.bias[rows] = out.bias[:n_old].mean()
    return len(new)


def trainable_new_token_rows(model, token_ids: Sequence[int]):
    """Wrap ``model`` with peft TrainableTokens so that ONLY the embedding rows ``token_ids`` train.

    Everything else is frozen. With tied embeddings peft ties the lm_head rows to the same delta;
    with untied ones the lm_head rows of those tokens are made trainable too. Returns the PeftModel
    (``.merge_and_unload()`` gives a plain model back).
    """
    from peft import TrainableTokensConfig, get_peft_model
    ids = sorted({int(i) for i in token_ids})
    n_rows = model.get_input_embeddings().weight.shape[0]
    if not ids or ids[0] < 0 or ids[-1] >= n_rows:
        raise ValueError(f"token ids must be a non-empty list within 0..{n_rows - 1}, got {list(token_ids)[:5]!r}")
    targets = [_module_name(model, model.get_input_embeddings())]
    if model.get_output_embeddings() is not None and not embeddings_tied(model):
        targets.append(_module_name(model, model.get_output_embeddings()))
    config = TrainableTokensConfig(token_indices=ids, target_modules=targets)
    with warnings.catch_warnings():
        # peft's generic tied-weights check warns, but TrainableTokens does tie: the lm_head is wrapped
        # with the embedding's delta (checked in tests/test_model_factory.py)
        warnings.filterwarnings("ignore", message="Model has `tie_word_embeddings=True`")
        return get_peft_model(model, config)


def _module_name(model, module) -> str:
    for name, m in model.named_modules():
        if m is module:
            return name
    raise ValueError("module not found in model")


def make_tiny_qwen3(tokenizer, hidden_size: int = 128, num_layers: int = 4, num_heads: int = 4,
                    num_kv_heads: int = 2, intermediate_size: int = 384, max_position_embeddings: int = 2048,
                    seed: int = 0, tie_embeddings: bool = True):
    """A randomly initialised Qwen3ForCausalLM (fp32; input and output embeddings tied unless
    ``tie_embeddings`` is False) sized to ``tokenizer``.

    Its generation config stops at ``<|im_end|>`` and pads with ``<|endoftext|>`` (greedy by default).
    """
    from transformers import GenerationConfig, Qwen3Config, Qwen3ForCausalLM
    if hidden_size % num_heads or num_heads % num_kv_heads:
        raise ValueError(f"hidden_size ({hidden_size}) must divide by num_heads ({num_heads}), "
                         f"and num_heads by num_kv_heads ({num_kv_heads})")
    eos, pad = _token_id(tokenizer, IM_END), _token_id(tokenizer, ENDOFTEXT)
    config = Qwen3Config(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=intermediate_size,
        num_hidden_layers=num_layers, num_attention_heads=num_heads, num_key_value_heads=num_kv_heads,
        head_dim=hidden_size // num_heads, max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=tie_embeddings, eos_token_id=eos, pad_token_id=pad, bos_token_id=None,
        max_window_layers=num_layers, dtype="float32")
    torch.manual_seed(seed)  # weight init draws from the global generator
    model = Qwen3ForCausalLM(config)
    model.generation_config = GenerationConfig(eos_token_id=eos, pad_token_id=pad, do_sample=False)
    return model.eval()


def _token_id(tokenizer, token: str) -> int:
    tid = tokenizer.get_vocab().get(token)
    if tid is None:
        raise ValueError(f"tokenizer has no {token!r} token (needed by the Qwen3 chat format)")
    return tid


def count_parameters(model) -> int:
    """Distinct parameters (``parameters()`` yields a tied embedding once)."""
    return sum(p.numel() for p in model.parameters())


def check_output_dir(out_dir, overwrite: bool = False) -> Path:
    """Raise FileExistsError when ``out_dir`` holds files and ``overwrite`` is off (call it before long work)."""
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise FileExistsError(f"{out} exists and is not empty (pass overwrite=True / --overwrite to replace it)")
    return out


def _portable_tokenizer_class(path: Path) -> None:
    """transformers 5 names a plain tokenizer.json tokenizer "TokenizersBackend", which 4.x (e.g. an older
    vLLM) cannot load; "PreTrainedTokenizerFast" loads the same tokenizer in both."""
    if path.is_file():
        cfg = json.loads(path.read_text(encoding="utf-8"))
        if cfg.get("tokenizer_class") == "TokenizersBackend":
            cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
            path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def save_tokenizer(tokenizer, folder) -> None:
    """tokenizer.save_pretrained(folder), loadable by transformers 4.x too (see _portable_tokenizer_class)."""
    tokenizer.save_pretrained(str(folder))
    _portable_tokenizer_class(Path(folder) / "tokenizer_config.json")


def save_model_dir(out_dir, model, tokenizer, meta: Optional[dict] = None, overwrite: bool = False) -> Path:
    """Save model + tokenizer (+ ``sidreasoner_model.json`` with ``meta``) as one HF folder, atomically.

    Everything is written to a temporary sibling folder that is renamed into place at the end, so a
    killed job never leaves a half-written model. An existing folder is replaced only with ``overwrite``.
    """
    out = check_output_dir(out_dir, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes the folder private; the model folder should not be
    try:
        model.save_pretrained(tmp)
        save_tokenizer(tokenizer, tmp)
        if meta is not None:
            (tmp / "sidreasoner_model.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
        if out.is_dir():
            shutil.rmtree(out)
        elif out.exists():
            out.unlink()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
