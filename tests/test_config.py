import pytest
from pydantic import Field

from postlab.config import describe_fields, load_config, parse_overrides
from postlab.errors import ConfigError
from postlab.train.pretrain import PretrainConfig
from postlab.train.sft import SFTConfig


def test_overrides_parse_types():
    tree = parse_overrides(["optim.lr=1e-4", "lora.enabled=true", "optim.batch_size=8", "lora.target_modules=[q_proj, v_proj]"])
    assert tree == {"optim": {"lr": "1e-4", "batch_size": 8}, "lora": {"enabled": True, "target_modules": ["q_proj", "v_proj"]}}


def test_config_from_overrides_alone(chat_file):
    cfg = load_config(SFTConfig, None, [f"data.train_file={chat_file}", "optim.lr=1e-4", "lora.enabled=true"])
    assert cfg.optim.lr == pytest.approx(1e-4)
    assert cfg.lora.enabled is True


def test_yaml_then_overrides(tmp_path, chat_file):
    f = tmp_path / "c.yaml"
    f.write_text(f"data:\n  train_file: {chat_file}\noptim:\n  lr: 0.5\n  batch_size: 2\n")
    cfg = load_config(SFTConfig, f, ["optim.lr=0.25"])
    assert (cfg.optim.lr, cfg.optim.batch_size) == (0.25, 2)


@pytest.mark.parametrize(
    "override, field",
    [
        ("optim.lr=abc", "optim.lr"),
        ("optim.lr=-1", "optim.lr"),
        ("optim.learning_rate=0.1", "optim.learning_rate"),
        ("lora.rank=4", "lora.rank"),
        ("optim.schedule=linear", "optim.schedule"),
        ("device=tpu", "device"),
    ],
)
def test_bad_value_names_field(chat_file, override, field):
    with pytest.raises(ConfigError) as e:
        load_config(SFTConfig, None, [f"data.train_file={chat_file}", override])
    assert field in str(e.value)


def test_missing_required_and_missing_files(tmp_path):
    with pytest.raises(ConfigError, match="data.train_file"):
        load_config(SFTConfig, None, [])
    with pytest.raises(ConfigError, match="data.train_file: file not found"):
        load_config(SFTConfig, None, [f"data.train_file={tmp_path / 'nope.jsonl'}"])
    with pytest.raises(ConfigError, match=r"data.files\[1\]"):
        (tmp_path / "a.txt").write_text("hello")
        load_config(PretrainConfig, None, [f"data.files=[{tmp_path / 'a.txt'}, {tmp_path / 'b.txt'}]"])
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(SFTConfig, tmp_path / "missing.yaml", [])


def test_bad_yaml_and_bad_override_syntax(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(SFTConfig, f, [])
    with pytest.raises(ConfigError, match="key=value"):
        load_config(SFTConfig, None, ["optim.lr"])


def test_describe_fields_documents_every_leaf():
    lines = describe_fields(SFTConfig)
    for name in ["model", "data.train_file", "optim.lr", "optim.grad_accum", "lora.r", "checkpoint.resume"]:
        assert any(line.strip().startswith(name + " (") for line in lines), name
    assert all(line.rstrip().endswith(":") is False for line in lines)  # every field has a description


def test_partial_override_keeps_the_stage_specific_section_default(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("text")
    cfg = load_config(PretrainConfig, None, [f"data.files=[{corpus}]", "optim.max_steps=5"])
    assert cfg.optim.lr == pytest.approx(1e-3)  # PretrainConfig's default, not OptimConfig's 2e-5
    assert cfg.optim.max_steps == 5


def test_help_shows_stage_specific_section_defaults():
    from postlab.train.sample import SampleConfig

    lines = describe_fields(SampleConfig)
    assert any(line.strip().startswith("sampling.temperature (float, default 0.7)") for line in lines)
    assert any(line.strip().startswith("out (str, required)") for line in lines)
    assert any(line.strip().startswith("optim.lr (float, default 0.001)") for line in describe_fields(PretrainConfig))


def test_help_shows_auto_where_the_stage_leaves_it_and_the_stage_value_where_it_sets_one():
    from postlab.train.common import OptimConfig
    from postlab.train.rm import RMConfig

    class Forced(SFTConfig):
        optim: OptimConfig = Field(default_factory=lambda: OptimConfig(bf16=True), description="forced bf16")

    def line(cls, name):
        return next(ln.strip() for ln in describe_fields(cls) if ln.strip().startswith(name + " ("))

    assert line(SFTConfig, "optim.bf16").startswith("optim.bf16 (bool | 'auto', default 'auto')")
    assert line(RMConfig, "optim.bf16").startswith("optim.bf16 (bool | 'auto', default 'auto')")  # the RM too
    assert line(Forced, "optim.bf16").startswith("optim.bf16 (bool | 'auto', default True)")  # a stage that sets it


def test_keep_auto_leaves_auto_unresolved_only_inside():
    from postlab.config import keep_auto, keeping_auto

    assert not keeping_auto()
    with keep_auto():
        assert keeping_auto()
    assert not keeping_auto()


@pytest.mark.parametrize("key, hint", [("optim.lrr", "did you mean 'optim.lr'?"),  # a misspelt key
                                       ("lr", "did you mean 'optim.lr'?"),  # a key of a section, given bare
                                       ("learning_rat", "did you mean 'learning_rate'?"),  # an alias, misspelt
                                       ("bogus_key", "--help lists every key")])
def test_unknown_key_says_what_to_write(chat_file, key, hint):
    with pytest.raises(ConfigError) as e:
        load_config(SFTConfig, None, [f"data.train_file={chat_file}", f"{key}=1"])
    assert f"  {key}: unknown key ({hint})" in str(e.value).splitlines()
