"""Typed configs: YAML file + dotted ``key=value`` overrides, validated before any work starts.

Every stage declares one pydantic model whose fields carry a ``description``; the CLI prints them
as ``--help``. Unknown keys are rejected (``extra="forbid"``), values are type-checked, and each
config may add semantic checks in ``check()`` (files exist, ranges agree). Errors name the field.
Keys may also be given by another name (``ALIASES``: TRL's names, and one vocabulary across commands).
"""

from __future__ import annotations

import contextlib
import contextvars
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from postlab.errors import ConfigError

K = TypeVar("K", bound=BaseModel)
C = TypeVar("C", bound="Section")

# While set, fields whose value `auto` is decided by the machine (postlab.machine) keep "auto" instead:
# --help shows the declared default without measuring anything.
_keep_auto = contextvars.ContextVar("keep_auto", default=False)


def keeping_auto() -> bool:
    return _keep_auto.get()


@contextlib.contextmanager
def keep_auto():
    token = _keep_auto.set(True)
    try:
        yield
    finally:
        _keep_auto.reset(token)


class Section(BaseModel):
    """Base for every config section: strict keys, validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())

    def check(self) -> None:
        """Semantic checks beyond types; raise ``ConfigError`` naming the field. Recurses."""
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, Section):
                value.check()


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for i, key in enumerate(keys[:-1]):
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {dotted!r}: {'.'.join(keys[: i + 1])} is not a section")
        node = child
    node[keys[-1]] = value


def parse_overrides(overrides: list[str]) -> dict:
    """``["train.lr=1e-4", "lora.enabled=true"]`` -> nested dict. Values are parsed as YAML scalars."""
    tree: dict = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"override {item!r} is not of the form key=value (e.g. train.lr=1e-4)")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        _set_dotted(tree, key.strip(), value)
    return tree


# Other names for config keys (docs/cli.md): TRL's names for the same setting, and the names other postlab
# commands use for it (the output location, step counts, progress). Each alias lists the canonical dotted keys
# it may stand for; a config takes the first one it has. A key the config has itself is never rewritten.
ALIASES: dict[str, tuple[str, ...]] = {
    # one vocabulary across commands
    "out": ("out_dir",),
    "out_dir": ("out",),
    "steps": ("optim.max_steps",),
    "optim.max_steps": ("steps",),
    "progress": ("checkpoint.progress",),
    "checkpoint.progress": ("progress",),
    # TRL (TrainingArguments, SFT/DPO/GRPO/PPO configs, ModelConfig)
    "output_dir": ("out_dir", "out"),
    "max_steps": ("optim.max_steps", "steps"),
    "learning_rate": ("optim.lr",),
    "gradient_accumulation_steps": ("optim.grad_accum",),
    "per_device_train_batch_size": ("optim.batch_size",),
    "num_train_epochs": ("optim.epochs",),
    "weight_decay": ("optim.weight_decay",),
    "warmup_steps": ("optim.warmup_steps",),
    "max_grad_norm": ("optim.max_grad_norm",),
    "adam_beta1": ("optim.adam_beta1",),
    "adam_beta2": ("optim.adam_beta2",),
    "adam_epsilon": ("optim.adam_eps",),
    "bf16": ("optim.bf16",),
    "seed": ("optim.seed", "sampling.seed"),
    "max_length": ("data.max_seq_len",),
    "model_name_or_path": ("model",),
    "use_peft": ("lora.enabled",),
    "lora_r": ("lora.r",),
    "lora_alpha": ("lora.alpha",),
    "lora_target_modules": ("lora.target_modules",),
    "eval_steps": ("checkpoint.eval_every",),
    "save_steps": ("checkpoint.save_every",),
    "save_total_limit": ("checkpoint.keep_last",),
    "logging_steps": ("checkpoint.log_every",),
    "report_to": ("checkpoint.report_to",),
    "num_generations": ("k",),
    "max_completion_length": ("sampling.max_new_tokens",),
    "max_new_tokens": ("sampling.max_new_tokens",),
    "temperature": ("sampling.temperature",),
    "top_p": ("sampling.top_p",),
    "top_k": ("sampling.top_k",),
    "num_ppo_epochs": ("ppo_epochs",),
    "cliprange": ("clip",),
    "cliprange_value": ("vf_clip",),
}


def _has_key(cls: type[Section], dotted: str) -> bool:
    *sections, leaf = dotted.split(".")
    for name in sections:
        info = cls.model_fields.get(name)
        if info is None or not (isinstance(info.annotation, type) and issubclass(info.annotation, Section)):
            return False
        cls = info.annotation
    return leaf in cls.model_fields


def alias_target(cls: type[Section], alias: str) -> str | None:
    """The canonical key ``alias`` stands for in ``cls``; None where it is no alias there (``cls`` has the
    key itself, or none of its targets)."""
    if alias not in ALIASES or _has_key(cls, alias):
        return None
    return next((t for t in ALIASES[alias] if _has_key(cls, t)), None)


def describe_aliases(cls: type[Section]) -> list[str]:
    """``alias = canonical.key`` for every alias ``cls`` accepts."""
    return [f"{alias} = {target}" for alias in ALIASES if (target := alias_target(cls, alias)) is not None]


_MISSING = object()


def _pop_dotted(tree: dict, dotted: str) -> Any:
    """Remove ``dotted`` from the nested ``tree`` (and the sections it leaves empty); its value, or _MISSING."""
    *sections, leaf = dotted.split(".")
    nodes = [tree]
    for name in sections:
        child = nodes[-1].get(name)
        if not isinstance(child, dict):
            return _MISSING
        nodes.append(child)
    if leaf not in nodes[-1]:
        return _MISSING
    value = nodes[-1].pop(leaf)
    for parent, name, node in reversed(list(zip(nodes, sections, nodes[1:]))):
        if node:
            break
        del parent[name]
    return value


def _has_dotted(tree: dict, dotted: str) -> bool:
    node: Any = tree
    for name in dotted.split("."):
        if not isinstance(node, dict) or name not in node:
            return False
        node = node[name]
    return True


def apply_aliases(cls: type[Section], tree: dict, source: str) -> dict:
    """``tree`` (one source: the YAML file, or the overrides) with every alias of ``cls`` renamed to its
    canonical key; an alias given beside its key (or beside another alias of it) is an error."""
    given_as: dict[str, str] = {}
    for alias in ALIASES:
        target = alias_target(cls, alias)
        if target is None:
            continue
        value = _pop_dotted(tree, alias)
        if value is _MISSING:
            continue
        if target in given_as or _has_dotted(tree, target):
            other = given_as.get(target, target)
            raise ConfigError(f"{source}: {alias!r} and {other!r} both set {target} ({alias} is another name for "
                              f"{target}); give it once")
        _set_dotted(tree, target, value)
        given_as[target] = alias
    return tree


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _complete_sections(cls: type[Section], data: dict) -> None:
    """Prepare nested sections before validation.

    - An absent required section becomes ``{}`` so errors name its missing leaves (``data.train_file``).
    - A partially overridden section starts from the *field's* default, not the section class's: a
      stage may default ``optim`` to ``OptimConfig(lr=1e-3)``, and ``optim.max_steps=5`` must keep it.
    """
    for name, info in cls.model_fields.items():
        ann = info.annotation
        if not (isinstance(ann, type) and issubclass(ann, Section)):
            continue
        if name not in data:
            if info.is_required():
                data[name] = {}
            continue
        if isinstance(data[name], dict):
            if not info.is_required():
                data[name] = _merge(info.get_default(call_default_factory=True).model_dump(), data[name])
            _complete_sections(ann, data[name])


def _dotted_keys(cls: type[Section], prefix: str = "") -> list[str]:
    """Every leaf key of ``cls`` in dotted form (``optim.lr``)."""
    keys = []
    for name, info in cls.model_fields.items():
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, Section):
            keys += _dotted_keys(ann, f"{prefix}{name}.")
        else:
            keys.append(f"{prefix}{name}")
    return keys


def _unknown_key_hint(cls: type[Section], field: str) -> str:
    """A "did you mean" for a misspelt key (or a known leaf under another section), else where to look."""
    import difflib

    keys = _dotted_keys(cls) + [alias for alias in ALIASES if alias_target(cls, alias) is not None]
    close = difflib.get_close_matches(field, keys, n=1, cutoff=0.6)
    if not close:
        leaf = field.rsplit(".", 1)[-1]
        by_leaf = {k.rsplit(".", 1)[-1]: k for k in keys}
        close = [by_leaf[m] for m in difflib.get_close_matches(leaf, list(by_leaf), n=1, cutoff=0.8)]
    return f"did you mean {close[0]!r}?" if close else "--help lists every key"


def _format_validation_error(err: ValidationError, source: str, cls: type[Section]) -> str:
    lines = [f"invalid config ({source}):"]
    for e in err.errors():
        field = ".".join(str(p) for p in e["loc"]) or "<root>"
        if e["type"] == "extra_forbidden":
            lines.append(f"  {field}: unknown key ({_unknown_key_hint(cls, field)})")
        else:
            lines.append(f"  {field}: {e['msg']} (got {e.get('input')!r})")
    return "\n".join(lines)


def load_config(cls: type[C], config_file: str | Path | None = None, overrides: list[str] | None = None) -> C:
    """Build ``cls`` from an optional YAML file and dotted overrides; raise ``ConfigError`` on any problem."""
    data: dict = {}
    source = "overrides"
    if config_file is not None:
        path = Path(config_file)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            raise ConfigError(f"{path}: not valid YAML: {e}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of config fields")
        data = apply_aliases(cls, loaded or {}, str(path))
        source = f"{path} + overrides"
    data = _merge(data, apply_aliases(cls, parse_overrides(overrides or []), "overrides"))
    _complete_sections(cls, data)
    try:
        cfg = cls.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_validation_error(e, source, cls)) from None
    cfg.check()
    return cfg


def save_config(cfg: Section, path: Path) -> None:
    from postlab.utils.io import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is None:
        return getattr(annotation, "__name__", str(annotation))
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin is typing.Literal:
        return "|".join(repr(a) if isinstance(a, str) else str(a) for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in args) + (" | null" if len(args) < len(typing.get_args(annotation)) else "")
    return f"{getattr(origin, '__name__', str(origin))}[{', '.join(_type_name(a) for a in args)}]"


def describe_fields(cls: type[Section], prefix: str = "", defaults: Section | None = None,
                    presets: dict[str, Section] | None = None) -> list[str]:
    """One line per leaf field: ``name (type, default): description`` — used for ``--help``.

    ``defaults`` is the section's default instance where the parent overrides the class defaults
    (``SampleConfig.sampling`` defaults to temperature 0.7, not ``SamplingParams``' 1.0). A field the
    parent's default leaves unset shows its own declared default (``auto``, not what auto picks here).
    ``presets`` (name -> knobs) gives the defaults of a `with_optional_knobs` config's knobs, per preset.
    """
    with keep_auto():
        return _describe(cls, prefix, defaults, presets or {})


def _describe(cls: type[Section], prefix: str, defaults: Section | None, presets: dict[str, Section]) -> list[str]:
    lines = []
    for name, info in cls.model_fields.items():
        ann = info.annotation
        dotted = f"{prefix}{name}"
        if isinstance(ann, type) and issubclass(ann, Section):
            lines.append(f"[{dotted}] {info.description or ''}".rstrip())
            if defaults is not None:
                sub = getattr(defaults, name)
            else:
                sub = None if info.is_required() else info.get_default(call_default_factory=True)
            lines.extend(_describe(ann, f"{dotted}.", sub, {}))
            continue
        knob = next((type(p).model_fields[name] for p in presets.values() if name in type(p).model_fields), None)
        if knob is not None:
            ann = knob.annotation
            default = "default " + ", ".join(f"{getattr(p, name)!r} in preset {preset}"
                                             for preset, p in presets.items())
        elif defaults is not None and name in defaults.model_fields_set:
            default = f"default {getattr(defaults, name)!r}"
        else:
            default = "required" if info.is_required() else f"default {info.get_default(call_default_factory=True)!r}"
        lines.append(f"  {dotted} ({_type_name(ann)}, {default}): {info.description or ''}")
    return lines


def with_optional_knobs(name: str, options: type[Section], knobs: type[Section]) -> type[Section]:
    """A config class: `options` plus every field of `knobs` as an optional field (None = the preset's
    value), each keeping its description; `postlab run` and `postlab overopt` are built this way."""
    from pydantic import Field, create_model

    cls = create_model(name, __base__=options, **{
        field: (f.annotation | None, Field(None, description=f.description)) for field, f in knobs.model_fields.items()})
    cls.__doc__ = options.__doc__
    return cls


def set_knobs(knobs: type[Section], cfg: Section) -> set[str]:
    """The knobs that `cfg` sets (the command line's or the YAML's: not None); a budget never cuts them."""
    return {k for k in knobs.model_fields if getattr(cfg, k, None) is not None}


def overlay_knobs(knobs: type[K], preset: K, cfg: Section, preset_name: str) -> K:
    """The preset's knobs with `cfg`'s non-None values on top, dict knobs merged key by key; validated, and
    a bad value names the knob."""
    base = preset.model_dump()
    mine = {k: getattr(cfg, k) for k in set_knobs(knobs, cfg)}
    for k, v in mine.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            mine[k] = {**base[k], **v}
    try:
        return knobs.model_validate({**base, **mine})
    except ValidationError as e:
        raise ConfigError(_format_validation_error(e, f"preset {preset_name} + overrides", knobs)) from None
