"""build_method: reference defaults, explicit settings win, clear errors for bad settings."""
import pytest
import torch.nn as nn

from _methods_helpers import tiny_kwargs
from infomin.methods import METHOD_DEFAULTS, METHOD_VIEWS, build_method, resolve_settings


def test_reference_values_of_the_seven_methods():
    # PyContrast's override table (modal, jigsaw, mem, head, nce_t) and shared defaults
    expected = {
        "InsDis": ("linear", 0.07, False, 0.5), "CMC": ("linear", 0.07, False, 0.5),
        "MoCo": ("linear", 0.07, False, 0.999), "PIRL": ("linear", 0.07, True, 0.5),
        "MoCov2": ("mlp", 0.2, False, 0.999), "CMCv2": ("mlp", 0.2, False, 0.999),
        "InfoMin": ("mlp", 0.15, True, 0.999),
    }
    for name, (head, t, jigsaw, momentum) in expected.items():
        d = METHOD_DEFAULTS[name]
        assert (d["head"], d["temperature"], d["jigsaw"], d["momentum"]) == (head, t, jigsaw, momentum)
        assert (d["arch"], d["feat_dim"], d["queue_size"], d["beta"]) == ("resnet50", 128, 65536, 0.5)
    assert [METHOD_VIEWS[n]["policy"] for n in expected] == ["A", "C", "A", "A", "B", "E", "D"]
    assert [METHOD_VIEWS[n]["crop_min"] for n in expected] == [0.08, 0.08, 0.2, 0.08, 0.2, 0.2, 0.2]


def test_explicit_settings_are_never_overridden():
    method = build_method("InfoMin", temperature=0.3, head="linear", beta=0.25, **tiny_kwargs("InfoMin"))
    assert (method.temperature, method.beta, method.jigsaw) == (0.3, 0.25, True)
    assert isinstance(method.head[0], nn.Linear) and len(method.head) == 2  # linear + L2
    assert method.settings["temperature"] == 0.3 and method.name == "InfoMin"
    moco = build_method("moco", jigsaw=True, **tiny_kwargs("MoCo"))  # names match case-insensitively
    assert moco.jigsaw and hasattr(moco, "jigsaw_head")
    assert build_method("PIRL", jigsaw=False, **tiny_kwargs("PIRL")).jigsaw is False
    # None means "the method's default"
    assert resolve_settings("MoCov2", temperature=None)["temperature"] == 0.2


@pytest.mark.parametrize(
    "name, kwargs, error, match",
    [
        ("BYOL", {}, ValueError, "unknown method 'BYOL'.*InfoMin"),
        ("MoCo", {"arch": "vgg16"}, ValueError, "unknown arch 'vgg16'"),
        ("MoCo", {"head": "bn-mlp"}, ValueError, "unknown head 'bn-mlp'.*linear, mlp"),
        ("MoCo", {"beta": 0.3}, ValueError, "jigsaw"),
        ("MoCo", {"temperature": -1.0}, ValueError, "temperature"),
        ("MoCo", {"queue_size": 0}, ValueError, "queue_size"),
        ("MoCo", {"nce_k": 5}, TypeError, "unknown setting"),
        ("PIRL", {"shuffle_bn": True}, ValueError, "does not use shuffle_bn"),
        ("InsDis", {"dataset_size": None}, ValueError, "dataset_size"),
        ("Supervised", {"num_classes": None}, ValueError, "num_classes"),
        ("Supervised", {"temperature": 0.2}, ValueError, "does not use temperature"),
    ],
)
def test_bad_settings_get_clear_errors(name, kwargs, error, match):
    settings = {**tiny_kwargs(name if name in METHOD_DEFAULTS else "MoCo"), **kwargs}
    with pytest.raises(error, match=match):
        build_method(name, **settings)


def test_default_valued_irrelevant_settings_are_accepted():
    # an engine may pass every config key; a value equal to the method default is harmless
    s = resolve_settings("MoCo", beta=0.5, dataset_size=10, num_classes=3)
    assert s["beta"] == 0.5 and s["dataset_size"] == 10
