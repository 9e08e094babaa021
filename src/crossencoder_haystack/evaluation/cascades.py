"""Cascades as contenders of `rerank evaluate`: each distilled student with its teacher, at each `cascade_keep`.

`rerank evaluate --ranker STUDENT_DIR --cascade-keep 10,20` evaluates the student alone (a model directory like
any other) and, for each value, a `CascadeRanker` in which the student ranks every candidate and the teacher its
`rerank distill` record names (`crossencoder_distillation.json`) re-ranks the best ones. The model-directory options
(`--backend`, `--precision`, `--max-length`, ...) apply to both models.
"""

from dataclasses import replace
from pathlib import Path
from typing import Any

from crossencoder_haystack.evaluation.fingerprints import json_fingerprint, model_fingerprint
from crossencoder_haystack.evaluation.rankers import RankerUnderTest, cross_encoder_ranker, ranker_from_component


def cascade_rankers(
    specs: list[str], keeps: list[int], options: dict[str, Any] | None = None, teacher: str | Path | None = None
) -> list[RankerUnderTest]:
    """
    One cascade per distilled student among `specs` and per value of `keeps`.

    :param specs: `--ranker` values; the model directories among them with a distillation record are students.
    :param keeps: The `cascade_keep` values.
    :param options: `CrossEncoderRanker` init parameters for both models (None values keep the defaults).
    :param teacher: The teacher directory, instead of the one each student's record names.
    :raises ValueError: If no spec is a distilled student (and no `teacher` is given), or a teacher is missing.
    """
    from crossencoder_haystack.training.distill_card import read_distillation_record
    from haystack_integrations.components.rankers.crossencoder import CascadeRanker

    students = [Path(spec).expanduser() for spec in specs if Path(spec).expanduser().is_dir()]
    named = [(student, teacher or read_distillation_record(student).get("teacher")) for student in students]
    pairs = [(student, Path(found).expanduser()) for student, found in named if found]
    if not pairs:
        msg = (
            "--cascade-keep needs a student made by `rerank distill` among the --ranker model directories (its "
            "crossencoder_distillation.json names the teacher), or --cascade-teacher DIR."
        )
        raise ValueError(msg)
    rankers = []
    for student, teacher_dir in pairs:
        if not teacher_dir.is_dir():
            msg = f"The teacher {teacher_dir} of the student {student} does not exist; pass --cascade-teacher DIR."
            raise FileNotFoundError(msg)
        for keep in keeps:
            cascade = CascadeRanker(
                student=cross_encoder_ranker(student, options or {}),
                teacher=cross_encoder_ranker(teacher_dir, options or {}),
                cascade_keep=keep,
            )
            ranker = ranker_from_component(cascade, f"cascade{keep}-{student.resolve().name}", str(student))
            identity = {"cascade": ranker.identity, "student": model_fingerprint(student)}
            identity["teacher"] = model_fingerprint(teacher_dir)  # nested models: their files key the cache too
            rankers.append(replace(ranker, identity=json_fingerprint(identity)))
    return rankers
