"""The generic registry: lazy targets, prefixes, globbing, duplicate and unknown names."""
import pytest

from xferlab.errors import UserError
from xferlab.registry import Registry


def make() -> Registry:
    reg = Registry("model")
    reg.register("attrnn", lambda n: ("attrnn", n), help="V2S_a")
    reg.register("attrnn_tiny", "json:dumps")  # lazy "module:attr"
    reg.register("ucr/", lambda name, x: (name, x))
    return reg


def test_create_and_lazy_target():
    reg = make()
    assert reg.create("attrnn", 3) == ("attrnn", 3)
    assert reg.get("attrnn_tiny")([1]) == "[1]"
    assert reg.help("attrnn") == "V2S_a"


def test_prefix_family_binds_full_name():
    reg = make()
    assert "ucr/Coffee" in reg and "ucr/" not in reg
    assert reg.create("ucr/Coffee", 1) == ("ucr/Coffee", 1)


def test_glob_listing():
    reg = make()
    assert reg.names("attrnn*") == ["attrnn", "attrnn_tiny"]
    assert reg.names("ucr/*") == ["ucr/*"]


def test_duplicate_is_an_error():
    reg = make()
    with pytest.raises(ValueError, match="duplicate model name 'attrnn'"):
        reg.register("attrnn", object)


def test_unknown_name_suggests_nearest():
    with pytest.raises(UserError, match="did you mean 'attrnn'"):
        make().get("atrnn")


def test_decorator_registration():
    reg = Registry("table")

    @reg.register("t2", help="Table 2")
    def build():
        return 2

    assert reg.create("t2") == 2 and build() == 2
