"""Knowledge distillation with `kd(student, teacher, temperature)` and
ensembles with `ensemble(...)`, checked against PyTorch.

- kd's training steps equal the same loop in PyTorch with F.kl_div on
  softened outputs times T^2; the frozen teacher (with BatchNorm and Dropout)
  never changes and runs in eval mode.
- On sklearn's digits, a small student distilled from a trained teacher beats
  the same student trained without it, with the same seeds and steps.
- ensemble's mean, logsumexp and vote equal torch.mean, torch.logsumexp and a
  vote counted by hand, in Python and in C++ (`stitch run`).
"""

from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import yaml
from sklearn.datasets import load_digits

from conftest import assert_clean_error


def save_scripted(module, path):
    module.eval()
    torch.jit.script(module).save(str(path))


def write_yaml(path, spec):
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def distill_spec(loss, **train):
    spec = {
        "inputs": {"x": ["N", 64]},
        "models": {"teacher": {"file": "teacher.pt", "freeze": True},
                   "student": {"file": "student.pt"}},
        "graph": ["s = student(x)", "t = teacher(x)"],
        "outputs": ["s", "t"],
        "train": {"data": "data.pt", "feed": {"x": "x", "labels": "labels"}, "loss": loss,
                  "optimizer": "sgd", "lr": 0.1, "epochs": 2, "batch": 16, "val_split": 0,
                  "shuffle": False, "seed": 0, "out": "run"},
    }
    spec["train"].update(train)
    return spec


def digits():
    d = load_digits()
    x = torch.tensor(d.data, dtype=torch.float32) / 16.0
    return x, torch.tensor(d.target, dtype=torch.long)


def test_kd_steps_equal_kl_div_in_pytorch_and_the_teacher_never_changes(tmp_path, run_stitch):
    torch.manual_seed(0)
    # Dropout and BatchNorm: only eval mode gives the teacher's numbers below.
    teacher = nn.Sequential(nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.5),
                            nn.Linear(32, 10))
    with torch.no_grad():
        teacher[1].running_mean.uniform_(-0.5, 0.5)
        teacher[1].running_var.uniform_(0.5, 2.0)
    student = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))
    save_scripted(teacher, tmp_path / "teacher.pt")
    save_scripted(student, tmp_path / "student.pt")
    x, labels = digits()
    x, labels = x[:64], labels[:64]
    torch.save({"x": x, "labels": labels}, tmp_path / "data.pt")
    loss = "cross_entropy(s, labels) + 0.5 * kd(s, t, temperature=3)"
    spec = write_yaml(tmp_path / "spec.yaml", distill_spec(loss))
    code, out, err = run_stitch("train", spec)
    assert code == 0, err

    teacher.eval()
    student.train()
    opt = torch.optim.SGD(student.parameters(), lr=0.1)
    T = 3.0
    for _ in range(2):
        for start in range(0, 64, 16):
            xb, yb = x[start:start + 16], labels[start:start + 16]
            with torch.no_grad():
                t = teacher(xb)
            s = student(xb)
            kd = F.kl_div(F.log_softmax(s / T, 1), F.softmax(t / T, 1),
                          reduction="batchmean") * T * T
            total = F.cross_entropy(s, yb) + 0.5 * kd
            opt.zero_grad()
            total.backward()
            opt.step()

    trained = torch.jit.load(str(tmp_path / "run" / "model.pt"))
    got = dict(trained.named_parameters())
    got.update(dict(trained.named_buffers()))
    for name, value in student.state_dict().items():
        assert torch.allclose(got["student." + name], value, atol=1e-5), name
    for name, value in teacher.state_dict().items():
        assert torch.equal(got["teacher." + name], value), f"the teacher's {name} changed"


def test_a_teacher_that_trains_is_refused(tmp_path, run_stitch):
    save_scripted(nn.Linear(64, 10), tmp_path / "teacher.pt")
    save_scripted(nn.Linear(64, 10), tmp_path / "student.pt")
    torch.save({"x": torch.rand(8, 64), "labels": torch.zeros(8, dtype=torch.long)},
               tmp_path / "data.pt")
    spec = distill_spec("kd(s, t)")
    spec["models"]["teacher"]["freeze"] = False
    code, out, err = run_stitch("train", write_yaml(tmp_path / "spec.yaml", spec))
    assert_clean_error(code, out, err)
    assert "teacher" in err and "freeze: true" in err
    # A learned layer on the teacher's side trains too.
    spec = distill_spec("kd(s, t)")
    spec["graph"] = ["s = student(x)", "t = linear(teacher(x), 10)"]
    code, out, err = run_stitch("train", write_yaml(tmp_path / "spec.yaml", spec))
    assert_clean_error(code, out, err)
    assert "linear(teacher(x), 10)" in err


def test_a_distilled_student_beats_the_same_student_without_its_teacher(tmp_path, run_stitch):
    x, y = digits()
    g = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(x), generator=g)
    test, rest = perm[:500], perm[500:]
    few = rest[:100]  # the student sees 100 labelled digits; the teacher saw them all
    torch.manual_seed(0)
    teacher = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                            nn.Linear(256, 10))
    opt = torch.optim.Adam(teacher.parameters(), 1e-3)
    for _ in range(600):
        idx = rest[torch.randint(len(rest), (64,), generator=g)]
        loss = F.cross_entropy(teacher(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    save_scripted(teacher, tmp_path / "teacher.pt")
    teacher_accuracy = (teacher(x[test]).argmax(1) == y[test]).float().mean().item()
    assert teacher_accuracy > 0.95
    torch.manual_seed(1)
    save_scripted(nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)),
                  tmp_path / "student.pt")
    torch.save({"x": x[few], "labels": y[few]}, tmp_path / "data.pt")

    accuracy = {}
    for name, loss in [("alone", "cross_entropy(s, labels)"),
                       ("distilled", "cross_entropy(s, labels) + kd(s, t, temperature=4)")]:
        spec = distill_spec(loss, optimizer="adam", lr=0.01, epochs=30, batch=20,
                            shuffle=True, out=f"run_{name}")
        code, out, err = run_stitch("train", write_yaml(tmp_path / f"{name}.yaml", spec))
        assert code == 0, err
        model = torch.jit.load(str(tmp_path / f"run_{name}" / "model.pt"))
        with torch.no_grad():
            predicted = model(x[test])["s"].argmax(1)
        accuracy[name] = (predicted == y[test]).float().mean().item()
    assert accuracy["distilled"] > accuracy["alone"] + 0.03, accuracy


def vote_by_hand(*logits):
    votes = torch.stack([z.argmax(-1) for z in logits])  # [models, N]
    out = []
    for row in votes.t().tolist():
        counts = [row.count(c) for c in range(logits[0].shape[-1])]
        out.append(counts.index(max(counts)))  # the lowest class of a tie
    return torch.tensor(out)


@pytest.mark.parametrize("how", ["mean", "logsumexp", "vote"])
def test_ensemble_equals_pytorch(tmp_path, run_stitch, how):
    torch.manual_seed(0)
    heads = [nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 5)) for _ in range(3)]
    for i, head in enumerate(heads):
        save_scripted(head, tmp_path / f"m{i}.pt")
    spec = {"inputs": {"x": ["N", 12]},
            "models": {f"m{i}": {"file": f"m{i}.pt"} for i in range(3)},
            "graph": [f'y = ensemble(m0(x), m1(x), m2(x), how="{how}")'],
            "outputs": ["y"]}
    write_yaml(tmp_path / "spec.yaml", spec)
    code, out, err = run_stitch("compose", tmp_path / "spec.yaml", "-o", tmp_path / "ens.pt")
    assert code == 0, err
    x = torch.randn(64, 12)
    with torch.no_grad():
        outs = torch.stack([h(x) for h in heads])
    want = {"mean": lambda: outs.mean(0),
            "logsumexp": lambda: torch.log(torch.exp(outs).mean(0)),  # PRODUCT.md's formula
            "vote": lambda: vote_by_hand(*outs)}[how]()
    got = torch.jit.load(str(tmp_path / "ens.pt"))(x)
    assert got.dtype == want.dtype
    assert torch.allclose(got, want, atol=1e-6), (got - want).abs().max()
    # The same through LibTorch in C++.
    torch.save(x, tmp_path / "x.pt")
    code, out, err = run_stitch("run", tmp_path / "ens.pt", "--input", tmp_path / "x.pt",
                                "-o", tmp_path / "y.pt")
    assert code == 0, err
    assert torch.allclose(torch.load(str(tmp_path / "y.pt")), want, atol=1e-6)


def test_ensemble_of_different_shapes_is_refused_with_a_fix(tmp_path, run_stitch):
    save_scripted(nn.Linear(12, 5), tmp_path / "a.pt")
    save_scripted(nn.Linear(12, 7), tmp_path / "b.pt")
    spec = {"inputs": {"x": ["N", 12]},
            "models": {"a": {"file": "a.pt"}, "b": {"file": "b.pt"}},
            "graph": ["y = ensemble(a(x), b(x))"], "outputs": ["y"]}
    code, out, err = run_stitch("check", write_yaml(tmp_path / "spec.yaml", spec))
    assert_clean_error(code, out, err)
    assert "[N, 5]" in err and "[N, 7]" in err and "fix:" in err
    spec["graph"] = ['y = ensemble(a(x), a(x), how="median")']
    code, out, err = run_stitch("check", write_yaml(tmp_path / "spec.yaml", spec))
    assert_clean_error(code, out, err)
    assert "mean" in err and "vote" in err
