"""Outputs of a tuning run: RecBole's result text, the trials CSV and the PNG plot."""

import csv
import io
import json

import numpy as np

from recbole_coldmeta.utils.atomic import atomic_path, atomic_write_text


def _result_line(result):
    return "    ".join(f"{name} : {value}" for name, value in result.items())


def write_output_file(tuner, result, output_file):
    """RecBole's ``export_result`` (every trial; our own lines for Ray), then the selected one;
    written to a temporary file, renamed to ``output_file`` when complete."""
    with atomic_path(output_file) as temporary:
        if tuner is not None:
            tuner.export_result(output_file=temporary)
        else:
            with open(temporary, "w", encoding="utf-8") as f:
                for trial in result["trials"]:
                    params = ", ".join(f"{key}:{value}" for key, value in trial["params"].items())
                    f.write(
                        f"{params}\nValid result:\n{_result_line(trial['valid_result'])}\n"
                        f"Test result:\n{_result_line(trial['test_result'])}\n\n"
                    )
        _append_selected(result, temporary)


def _append_selected(result, path):
    direction = "higher" if result["valid_score_bigger"] else "lower"
    params = ", ".join(f"{key}:{value}" for key, value in result["best_params"].items())
    with open(path, "a", encoding="utf-8") as f:
        f.write(
            f"Best params (trial {result['best_trial']} of {len(result['trials'])}, selected on "
            f"valid {result['valid_metric']}, {direction} is better):\n{params}\n"
            f"Valid result:\n{_result_line(result['best_valid_result'])}\n"
            f"Test result:\n{_result_line(result['test_result'])}\n"
        )


def write_trials_csv(result, path):
    """One row per trial: parameters, valid score, valid/test metrics, seconds, selected."""
    trials = result["trials"]
    names = list(dict.fromkeys(name for trial in trials for name in trial["params"]))
    metrics = list(dict.fromkeys(m for trial in trials for m in trial["valid_result"]))
    columns = ["trial", *names, "valid_score"]
    columns += [f"valid/{m}" for m in metrics] + [f"test/{m}" for m in metrics]
    columns += ["seconds", "selected"]
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns)
    writer.writeheader()
    for trial in trials:
        row = {"trial": trial["trial"], "valid_score": trial["best_valid_score"]}
        for name, value in trial["params"].items():
            row[name] = json.dumps(value) if isinstance(value, list | dict) else value
        for m in metrics:
            row[f"valid/{m}"] = trial["valid_result"].get(m)
            row[f"test/{m}"] = trial["test_result"].get(m)
        row["seconds"] = trial["seconds"]
        row["selected"] = trial["trial"] == result["best_trial"]
        writer.writerow(row)
    atomic_write_text(path, text.getvalue())


def plot_trials(result, path):
    """Validation score per trial, the best so far, and the selected trial (PNG, Agg canvas)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    trials = result["trials"]
    numbers = [trial["trial"] for trial in trials]
    nan = float("nan")
    scores = [nan if t["best_valid_score"] is None else t["best_valid_score"] for t in trials]
    pick = np.fmax if result["valid_score_bigger"] else np.fmin
    figure = Figure(figsize=(7, 4))
    FigureCanvasAgg(figure)
    axis = figure.subplots()
    axis.plot(numbers, scores, "o-", label="trial")
    axis.plot(numbers, pick.accumulate(np.asarray(scores, dtype=float)), "--", label="best so far")
    best = result["best_trial"]
    axis.plot([best], [scores[numbers.index(best)]], "*", markersize=14, label=f"selected ({best})")
    direction = "higher" if result["valid_score_bigger"] else "lower"
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_xlabel("trial")
    axis.set_ylabel(f"valid {result['valid_metric']} ({direction} is better)")
    axis.set_title(f"{result['model']} on {result['dataset']}: {result['algo']} search")
    axis.legend()
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=120, format="png")
