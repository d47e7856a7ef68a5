import pytest

from utilities.classes import (
    IMAGENET_CLASS_NAMES,
    UnknownClassError,
    check_class_names,
    class_index,
    default_class_names,
    find_classes,
)


def test_there_are_1000_unique_names():
    assert len(IMAGENET_CLASS_NAMES) == 1000
    assert len(set(IMAGENET_CLASS_NAMES)) == 1000
    assert IMAGENET_CLASS_NAMES[285] == "Egyptian cat"


@pytest.mark.parametrize("name", ["Egyptian cat", "egyptian CAT", "  espresso "])
def test_lookup_ignores_case_and_spaces(name):
    assert IMAGENET_CLASS_NAMES[class_index(name)].lower() == name.strip().lower()


def test_unique_wordnet_synonym_is_accepted():
    assert IMAGENET_CLASS_NAMES[class_index("tabby cat")] == "tabby"


def test_index_passes_through_and_range_is_checked():
    assert class_index(967) == 967
    with pytest.raises(UnknownClassError, match="out of range.*1000 classes, numbered 0 to 999"):
        class_index(1000)
    with pytest.raises(UnknownClassError, match="out of range"):
        class_index(-1)


def test_wrong_type_is_a_type_error():
    with pytest.raises(TypeError, match="name \\(str\\) or index \\(int\\)"):
        class_index(2.5)


def test_miss_lists_closest_real_names():
    with pytest.raises(UnknownClassError) as caught:
        class_index("car")
    suggestions = caught.value.suggestions
    for expected in ("sports car", "beach wagon", "convertible"):
        assert expected in suggestions
    assert "sports car" in str(caught.value)
    assert all(name in IMAGENET_CLASS_NAMES for name in suggestions)


def test_misspelling_suggests_the_right_class():
    with pytest.raises(UnknownClassError) as caught:
        class_index("expresso")
    assert caught.value.suggestions[0] == "espresso"


def test_nonsense_says_so():
    with pytest.raises(UnknownClassError, match="No class name resembles it"):
        class_index("qwxzv")


def test_find_classes_uses_wordnet_meaning():
    assert "pug" in find_classes("dog")  # WordNet synonym "pug-dog"
    assert "convertible" in find_classes("car")  # WordNet definition "a car that ..."
    assert find_classes("cats", limit=3)[0].endswith("cat")
    assert find_classes("") == []


def test_custom_class_names_work_without_wordnet():
    names = ["apple", "pear", "red apple"]
    assert class_index("PEAR", names) == 1
    assert find_classes("apple", names) == ["apple", "red apple"]


def test_default_names_are_imagenet_only_for_1000_outputs():
    assert default_class_names(1000) == IMAGENET_CLASS_NAMES
    assert default_class_names(3) == ("class 0", "class 1", "class 2")


def test_checked_names_say_what_is_wrong():
    assert check_class_names(["cat", "Cat"], 2) == ("cat", "Cat")  # ImageNet itself has "Cardigan" and "cardigan"
    with pytest.raises(ValueError, match="Got 1 class names but the network has 2 outputs; pass one name per output"):
        check_class_names(["cat"], 2)
    with pytest.raises(ValueError, match="'cat' twice \\(positions 0 and 2\\)"):
        check_class_names(["cat", "dog", "cat"])
    with pytest.raises(TypeError, match="a list of strings, one per output, got str 'cat'"):
        check_class_names("cat")
    with pytest.raises(TypeError, match="must be strings; got 3 \\(int\\)"):
        check_class_names(["cat", 3])


def test_a_name_written_exactly_wins_over_one_that_differs_in_case():
    # ImageNet has "Cardigan" (264, a dog) and "cardigan" (474, a sweater): ignoring case first gave the dog for both.
    assert class_index("cardigan") == 474 and class_index("Cardigan") == 264
    assert class_index(" cardigan ") == 474 and class_index("CARDIGAN") == 264  # no exact match: the first, any case
