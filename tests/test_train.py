import datetime
import io
import json
import sys
import zipfile

import numpy as np
import pytest
from conftest import ROOT, assert_same_fits, make_params, run

from digits.core.errors import ParamsError, PipelineError
from digits.core.params import check_environment
from digits.data.prepared import prepare, stratified_subset
from digits.data.sources import from_sample
from digits.training.cv import check_folds, cv_metrics, final_task, fold_tasks, history_table
from digits.training.fit import fit, to_bytes
from digits.training.parallel import run_tasks


def test_folds_partition_the_training_set():
    tasks = fold_tasks(103, folds=5, seed=1)
    assert len(tasks) == 5
    held_out = np.concatenate([t.val_index for t in tasks])
    assert sorted(held_out.tolist()) == list(range(103))  # each image validated exactly once
    for t in tasks:
        assert set(t.train_index).isdisjoint(t.val_index)
        assert len(t.train_index) + len(t.val_index) == 103
    assert [t.seed for t in tasks] == [2, 3, 4, 5, 6]
    assert [t.name for t in tasks][0] == "fold 1/5"


def test_folds_are_seeded():
    a, b = fold_tasks(50, 2, seed=1), fold_tasks(50, 2, seed=1)
    np.testing.assert_array_equal(a[0].val_index, b[0].val_index)
    assert not np.array_equal(a[0].val_index, fold_tasks(50, 2, seed=7)[0].val_index)


def test_final_fit_uses_every_training_image_and_no_validation():
    task = final_task(40, seed=1)
    assert task.train_index.tolist() == list(range(40)) and task.val_index is None


def test_folds_cannot_outnumber_the_smallest_class():
    labels = np.repeat(np.arange(10), 3)
    check_folds(labels, 3)
    with pytest.raises(ParamsError, match="cv.folds is 4; it must be at most 3"):
        check_folds(labels, 4)


def test_cv_metrics_are_percent_with_population_std():
    metrics = cv_metrics({1: 0.98, 2: 0.99, 3: 1.0}, {"source": "sample", "images": 3})
    assert metrics["accuracy_mean"] == pytest.approx(99.0)
    assert metrics["accuracy_std"] == pytest.approx(np.std([98, 99, 100]), abs=1e-4)  # ddof=0
    assert metrics["fold_accuracy"] == {"fold_1": 98.0, "fold_2": 99.0, "fold_3": 100.0}
    json.dumps(metrics)
    # the folds done so far of a run, with their own numbers
    assert cv_metrics({2: 0.99}, {})["fold_accuracy"] == {"fold_2": 99.0}


@pytest.fixture(scope="module")
def small_train():
    x, y = prepare(stratified_subset(from_sample()["train"], 400, seed=1))
    return x, y


def test_parallel_results_equal_sequential(small_train, tmp_path):
    x, y = small_train
    tasks = [final_task(len(x), 1), *fold_tasks(len(x), 2, 1)]
    sequential = run_tasks(tasks, x, y, make_params(epochs=2, cv__n_jobs=1))
    epochs = []
    parallel = run_tasks(tasks, x, y, make_params(epochs=2, cv__n_jobs=2), report=epochs.append)
    assert [r.name for r in parallel] == ["final", "fold 1/2", "fold 2/2"]
    assert_same_fits(sequential, parallel, tmp_path)
    # every epoch of every fit came back from the workers as it ended, with Keras' logs
    assert sorted((e.fit, e.epoch) for e in epochs) == [(t.name, k) for t in tasks for k in (1, 2)]
    for event in epochs:
        result = parallel[[t.name for t in tasks].index(event.fit)]
        assert event.logs == {key: values[event.epoch - 1] for key, values in result.history.items()}
        assert event.seconds > 0
    # the folds learned something, and their histories are tidy
    assert all(r.val_accuracy > 0.3 for r in parallel[1:])
    table = history_table({1: parallel[1].history, 2: parallel[2].history}, {"source": "mnist", "images": 80})
    columns = ["fold", "epoch", "loss", "accuracy_pct", "val_loss", "val_accuracy_pct", "data"]
    assert list(table.columns) == columns
    assert set(table["data"]) == {"80 full MNIST images"}
    assert table["fold"].tolist() == [1, 1, 2, 2] and table["epoch"].tolist() == [1, 2, 1, 2]
    # accuracies in percent, like every accuracy of the project; losses as Keras gives them
    fold_1 = parallel[1].history
    assert table.loc[0, "val_accuracy_pct"] == pytest.approx(100 * fold_1["val_accuracy"][0])
    assert table.loc[0, "accuracy_pct"] == pytest.approx(100 * fold_1["accuracy"][0])
    assert table.loc[0, "loss"] == pytest.approx(fold_1["loss"][0])


IS_ONEDNN_ON = "from tensorflow.python.util import _pywrap_util_port; print(_pywrap_util_port.IsMklEnabled())"


def test_fits_run_on_onednn_whatever_the_environment_says():
    # A stage or command turns oneDNN on before TensorFlow starts, over a user's 0.
    probe = f"import digits.core.cli, tensorflow; {IS_ONEDNN_ON}"
    assert run([sys.executable, "-c", probe], ROOT, TF_ENABLE_ONEDNN_OPTS="0").stdout.strip() == "True"
    # A process whose TensorFlow started without it (a Dask worker that ran other code first)
    # refuses to fit, with the fix, instead of training with other kernels.
    late = (
        "import tensorflow, numpy as np\n"
        "from digits.core.params import Params\n"
        "from digits.training.fit import FitTask, fit\n"
        "x, y = np.zeros((4, 28, 28, 1), 'float32'), np.eye(10)[:4]\n"
        "fit(FitTask('final', 1, np.arange(4)), x, y, Params())"
    )
    worker = run([sys.executable, "-c", late], ROOT, check=False, TF_ENABLE_ONEDNN_OPTS="0")
    assert worker.returncode == 1
    last = worker.stderr.strip().splitlines()[-1]
    assert last.startswith("digits.core.errors.PipelineError: TensorFlow in process ")
    assert last.endswith(
        "started without oneDNN's kernels, so its fits would not match the pipeline's; start that process "
        "(a Dask worker) with TF_ENABLE_ONEDNN_OPTS=1"
    )


def test_dask_without_a_scheduler_is_caught_before_training(monkeypatch):
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    with pytest.raises(ParamsError, match="cv.scheduler is null and DASK_SCHEDULER_ADDRESS is unset"):
        check_environment(make_params(cv__backend="dask"))
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", "tcp://127.0.0.1:8786")
    check_environment(make_params(cv__backend="dask"))


def test_a_diverging_fit_stops_with_the_param_to_change(small_train):
    x, y = small_train
    params = make_params(epochs=3, optimizer__learning_rate=1.0, optimizer__momentum=0.99)
    with pytest.raises(
        PipelineError,
        match=r"^final: loss became (nan|inf) in epoch 1: training diverged; "
        r"lower optimizer.learning_rate \(now 1.0\)",
    ):
        fit(final_task(len(x), 1), x * 1e4, y, params)  # huge inputs: the loss overflows at once


def test_the_same_model_saved_twice_gives_the_same_bytes(monkeypatch, tmp_path):
    import keras

    from digits.training.fit import fresh_model
    from digits.training.model import load_model

    def model() -> keras.Model:
        return fresh_model(make_params(), steps_per_epoch=2, seed=1)

    first = to_bytes(model())

    # A year later, to the second, and another model object with the same weights: Keras'
    # save date, the zip entry times, the objects' memory addresses and the names (a second
    # model in a process) would all differ.
    later = datetime.datetime.now() + datetime.timedelta(days=365, seconds=7)

    class Later(datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return later

    monkeypatch.setattr(datetime, "datetime", Later)
    monkeypatch.setattr("time.time", lambda: later.timestamp())
    monkeypatch.setattr("time.localtime", lambda *_: later.timetuple())
    again = model()
    second = to_bytes(again)
    assert first == second
    with zipfile.ZipFile(io.BytesIO(second)) as archive:
        assert "date_saved" not in json.loads(archive.read("metadata.json"))
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        assert json.loads(archive.read("metadata.json"))["keras_version"] == keras.__version__
    # and it is still the same model
    (tmp_path / "model.keras").write_bytes(second)
    images = np.random.default_rng(0).random((4, 28, 28, 1), dtype=np.float32)
    np.testing.assert_array_equal(
        load_model(tmp_path / "model.keras").predict(images, verbose=0), again.predict(images, verbose=0)
    )


def test_weight_averaging_changes_the_validated_and_saved_weights_only(small_train, tmp_path):
    from digits.training.model import load_model

    x, y = small_train
    task = fold_tasks(len(x), 2, 1)[0]
    plain = fit(task, x, y, make_params(epochs=2))
    averaged = fit(task, x, y, make_params(epochs=2, optimizer__ema=0.9))
    # The same steps on the same draws: the training loss is the raw weights' either way.
    assert averaged.history["loss"] == plain.history["loss"]
    # Validation sees the average, and the saved model holds it.
    assert averaged.history["val_accuracy"] != plain.history["val_accuracy"]
    (tmp_path / "model.keras").write_bytes(averaged.model)
    predicted = load_model(tmp_path / "model.keras").predict(x[task.val_index], verbose=0).argmax(axis=1)
    accuracy = float((predicted == y[task.val_index].argmax(axis=1)).mean())
    assert accuracy == pytest.approx(averaged.val_accuracy, abs=1e-6)
    assert fit(task, x, y, make_params(epochs=2, optimizer__ema=0.9)).model == averaged.model
