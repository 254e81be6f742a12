"""The worked examples on sklearn's digits (examples/digits_models.py): the
distillation of a resnet18 teacher into a small CNN, the soup of three
fine-tuned heads as a spec's merge entry, and the greedy soup of the README,
each checked against PyTorch.
"""

import csv
import importlib.util
import shutil

import pytest
import torch

from conftest import EXAMPLES

_spec = importlib.util.spec_from_file_location("digits_models", EXAMPLES / "digits_models.py")
digits_models = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(digits_models)

INGREDIENTS = [f"digits_head_{i}.pt" for i in range(3)]


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    """A copy of examples/ with its digits models in models/."""
    root = tmp_path_factory.mktemp("digits_examples")
    digits_models.export(str(root / "models"))
    for name in ("distill_digits.yaml", "distill_digits_student.yaml", "soup_digits.yaml"):
        shutil.copyfile(EXAMPLES / name, root / name)
    return root


def accuracy(logits, labels):
    return (logits.argmax(1) == labels).float().mean().item()


def test_the_distillation_example_trains_the_student_and_never_the_teacher(examples,
                                                                           run_stitch):
    code, out, err = run_stitch("train", examples / "distill_digits.yaml")
    assert code == 0, err
    trained = torch.jit.load(str(examples / "runs" / "distill_digits" / "model.pt"))
    teacher = torch.jit.load(str(examples / "models" / "digits_teacher.pt"))
    student = torch.jit.load(str(examples / "models" / "digits_student.pt"))
    got = trained.state_dict()
    for name, value in teacher.state_dict().items():
        assert torch.equal(got["teacher." + name], value), f"the teacher's {name} changed"
    assert any(not torch.equal(got["student." + n], v) for n, v in student.state_dict().items())

    # The student alone, cut out of the trained model, is the trained student.
    code, out, err = run_stitch("compose", examples / "distill_digits_student.yaml",
                                "-o", examples / "student.pt")
    assert code == 0, err
    alone = torch.jit.load(str(examples / "student.pt"))
    test = torch.load(str(examples / "models" / "digits_test.pt"))
    with torch.no_grad():
        both = trained(test["x"])
        assert torch.allclose(alone(test["x"]), both["student_logits"], atol=1e-5)
        assert torch.equal(both["teacher_logits"], teacher(test["x"]))
    assert accuracy(alone(test["x"]), test["labels"]) > 0.85


def uniform_average(paths):
    models = [torch.jit.load(str(p)) for p in paths]
    states = [m.state_dict() for m in models]
    averaged = {k: (sum(s[k] for s in states) / len(states)) if v.is_floating_point() else v
                for k, v in states[0].items()}
    soup = digits_models.SmallCNN()
    soup.load_state_dict(averaged)
    return soup.eval()


def test_the_soup_example_is_the_uniform_average_of_its_heads(examples, run_stitch):
    code, out, err = run_stitch("compose", examples / "soup_digits.yaml", "-o",
                                examples / "soup.pt")
    assert code == 0, err
    soup = torch.jit.load(str(examples / "soup.pt"))
    want = uniform_average([examples / "models" / name for name in INGREDIENTS])
    x = torch.load(str(examples / "models" / "digits_test.pt"))["x"]
    with torch.no_grad():
        assert torch.allclose(soup(x), want(x), atol=1e-5)


def test_the_readmes_greedy_soup_is_at_least_its_best_ingredient(examples, run_stitch):
    models = examples / "models"
    code, out, err = run_stitch("merge", *[models / n for n in INGREDIENTS], "-o",
                                examples / "greedy.pt", "--greedy", "--data",
                                models / "digits_val.pt", "--metric", "accuracy")
    assert code == 0, err
    val = torch.load(str(models / "digits_val.pt"))
    with torch.no_grad():
        own = [accuracy(torch.jit.load(str(models / n))(val["x"]), val["labels"])
               for n in INGREDIENTS]
        soup = accuracy(torch.jit.load(str(examples / "greedy.pt"))(val["x"]), val["labels"])
    assert soup >= max(own)
    rows = list(csv.DictReader(open(examples / "greedy.scores.csv")))
    assert len(rows) == 3 and float(rows[0]["model_score"]) == pytest.approx(max(own), abs=1e-6)
    kept = [models / r["model"] for r in rows if r["kept"] == "true"]
    want = uniform_average(kept)
    with torch.no_grad():
        assert torch.allclose(torch.jit.load(str(examples / "greedy.pt"))(val["x"]),
                              want(val["x"]), atol=1e-5)
