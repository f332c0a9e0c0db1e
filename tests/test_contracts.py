import warnings

from imdb_sentiment import contracts


class Owner:
    present = 1

    def method(self, a: int, b: int = 0) -> int:
        return a + b


def test_missing_members_names_the_type_and_member() -> None:
    assert contracts.missing_members(Owner(), ["present", "gone"]) == ["Owner.gone is gone"]
    assert contracts.missing_members(Owner, ["present"]) == []


def test_signature_changed_names_what_it_found() -> None:
    assert contracts.signature_changed(Owner().method, ["a", "b"], "Owner.method") == []
    assert contracts.signature_changed(Owner().method, ["a"], "Owner.method") == [
        "Owner.method takes ['a', 'b'], not ['a']"
    ]
    assert contracts.signature_changed(None, ["a"], "Owner.lost") == ["Owner.lost is gone"]


def test_warn_fallback_says_what_is_off_why_and_what_runs() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        contracts.warn_fallback("Fast path", ["X.y is gone"], "The slow path runs.")
    assert str(caught[0].message) == "Fast path is turned off: X.y is gone. The slow path runs."
    assert caught[0].category is contracts.InternalsChanged
