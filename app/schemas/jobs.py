"""Shapes for jobs, workers and model versions: what admins send to create a job (its
parameters validated per kind, with the trainer's defaults), and what workers send and get."""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.schemas.labeling import Strict
from app.schemas.times import UtcDateTime

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
# The snapshot reference that makes a new export snapshot (default filters) with the job.
NEW_SNAPSHOT = "new"
SnapshotRef = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)
]


# --- Parameters per kind ----------------------------------------------------------------------
# The defaults are the trainer's (trainer/config.py); a test keeps the two in step. Fields that
# do not name data or model versions are passed to the trainer as `--set key=value`.


class TrainParams(Strict):
    snapshot: SnapshotRef = Field(
        description=f"export snapshot id (under DATA_DIR/exports) or path; {NEW_SNAPSHOT!r} "
        "makes a new one now with the export filters' defaults"
    )
    model_version_id: int = Field(description="the model version to start from")
    learning_rate: float = Field(gt=0, le=1)
    batch_size: int = Field(ge=1, le=4096)
    epochs: int = Field(ge=1, le=1000)
    max_steps: int | None = Field(default=None, ge=1)
    max_length: int = Field(default=1024, ge=8, le=131_072)
    seed: int = Field(default=0, ge=0)
    lora_rank: int = Field(default=0, ge=0, le=1024)
    gradient_checkpointing: bool = False
    save_every: int | None = Field(default=None, ge=0)
    log_every: int = Field(default=10, ge=1)


class SftParams(TrainParams):
    learning_rate: float = Field(default=1e-5, gt=0, le=1)
    batch_size: int = Field(default=32, ge=1, le=4096)
    epochs: int = Field(default=16, ge=1, le=1000)
    dropout: float | None = Field(default=0.2, ge=0, lt=1)
    reward_model_version_id: int | None = Field(
        default=None, description="selects the best epoch by reward on validation prompts"
    )


class RmParams(TrainParams):
    learning_rate: float = Field(default=9e-6, gt=0, le=1)
    batch_size: int = Field(default=64, ge=1, le=4096)
    epochs: int = Field(default=1, ge=1, le=1000)
    mode: Literal["grouped", "pairwise"] = "grouped"


class PpoParams(TrainParams):
    learning_rate: float = Field(default=1e-6, gt=0, le=1)
    batch_size: int = Field(default=64, ge=1, le=4096)
    epochs: int = Field(default=8, ge=1, le=1000)
    reward_model_version_id: int = Field(description="the reward model to optimize against")
    minibatch_size: int = Field(default=16, ge=1, le=4096)
    ppo_epochs: int = Field(default=4, ge=1, le=100)
    max_new_tokens: int = Field(default=128, ge=1, le=8192)
    temperature: float = Field(default=1.0, gt=0, le=10)
    kl_coef: float = Field(default=0.02, ge=0, le=10)
    ptx_coef: float = Field(default=0.0, ge=0, le=100)


class SampleParams(Strict):
    project_id: int
    prompt_ids: list[int] | None = Field(
        default=None,
        max_length=10_000,
        description="prompts to answer (default: the project's train-split prompts, oldest first)",
    )
    max_prompts: int = Field(default=100, ge=1, le=10_000, description="when prompt_ids is empty")
    model_version_ids: list[int] = Field(
        min_length=1, max_length=9, description="completions are drawn from these in turn"
    )
    k: int = Field(default=4, ge=4, le=9, description="completions per prompt")
    temperature: float = Field(default=1.0, gt=0, le=10)
    top_p: float = Field(default=1.0, gt=0, le=1)
    max_new_tokens: int = Field(default=128, ge=1, le=8192)
    seed: int = Field(default=0, ge=0)


class EvaluateParams(Strict):
    """Two policy versions answer the same test-split prompts of a project; labelers of one
    group compare the answers pairwise (app/services/evaluations.py)."""

    project_id: int
    model_version_a_id: int = Field(description="policy version A (its win rate is reported)")
    model_version_b_id: int = Field(description="policy version B, the baseline")
    labeler_group: Literal["training", "held_out"] = Field(
        default="training", description="who compares: training or held_out labelers"
    )
    prompt_ids: list[int] | None = Field(
        default=None,
        max_length=10_000,
        description="test-split prompts to answer (default: the project's, oldest first)",
    )
    max_prompts: int = Field(default=100, ge=1, le=10_000, description="when prompt_ids is empty")
    annotations_per_prompt: int = Field(default=1, ge=1, le=10, description="labelers per pair")
    temperature: float = Field(default=1.0, gt=0, le=10)
    top_p: float = Field(default=1.0, gt=0, le=1)
    max_new_tokens: int = Field(default=128, ge=1, le=8192)
    seed: int = Field(default=0, ge=0)


PARAMS: dict[str, type[Strict]] = {
    "sample": SampleParams,
    "sft": SftParams,
    "rm": RmParams,
    "ppo": PpoParams,
    "evaluate": EvaluateParams,
}
# Parameters that are references, not trainer options.
REFERENCES = {"snapshot", "model_version_id", "reward_model_version_id"}
JobKind = Literal["sample", "sft", "rm", "ppo", "evaluate"]
# Workers also run labelers' dialogue suggestions (app/services/suggestions.py).
ClaimKind = Literal["suggest", "sample", "sft", "rm", "ppo", "evaluate"]


class JobIn(Strict):
    kind: JobKind
    params: dict[str, Any] = Field(default_factory=dict)
    gpus: int = Field(default=1, ge=1, le=64, description="GPU count hint for the worker")


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class MetricOut(Out):
    seq: int
    step: int
    values: dict[str, Any]


class JobOut(Out):
    id: int
    kind: str
    state: str
    params: dict[str, Any]
    gpus: int
    created_at: UtcDateTime
    started_at: UtcDateTime | None
    finished_at: UtcDateTime | None
    attempts: int
    cancel_requested: bool
    step: int
    total_steps: int | None
    progress: float | None
    lease_expires_at: UtcDateTime | None
    error: str | None
    result: dict[str, Any] | None


class JobDetailOut(JobOut):
    log_tail: str
    metrics: list[MetricOut]


# --- Workers ------------------------------------------------------------------------------------


class WorkerIn(Strict):
    name: Name


class WorkerOut(Out):
    id: int
    name: str
    created_at: UtcDateTime
    revoked_at: UtcDateTime | None
    last_seen_at: UtcDateTime | None


class WorkerCreated(WorkerOut):
    token: str  # shown once


class ClaimIn(Strict):
    kinds: list[ClaimKind] = Field(
        default_factory=lambda: ["suggest", "sample", "sft", "rm", "ppo", "evaluate"]
    )
    lease_seconds: int = Field(default=60, ge=1, le=3600)
    max_gpus: int = Field(default=64, ge=0, le=64, description="claim only jobs wanting ≤ this")


class Storage(BaseModel):
    """The app's DATA_DIR as the app sees it. A worker that finds the same `storage_id` in
    `<path>/.storage-id` shares the app's disk and uses the paths in the spec directly; any
    other worker downloads and uploads the artifacts through the API."""

    path: str
    storage_id: str


class JobSpec(BaseModel):
    """What a worker needs to run a claimed job. Paths are the app's (see Storage)."""

    job_id: int
    kind: str
    lease: str
    lease_expires_at: UtcDateTime
    attempt: int
    gpus: int
    params: dict[str, Any]
    run_dir: str
    data: str | None = None  # snapshot directory
    model: str | None = None
    reward_model: str | None = None
    # Sample and evaluate jobs: the prompts to answer and the model versions to answer them.
    prompts: list[dict[str, Any]] = Field(default_factory=list)
    models: dict[str, str] = Field(default_factory=dict)  # model version id -> path
    # The model version ids behind `model` and `reward_model` (to download them by).
    model_version_id: int | None = None
    reward_model_version_id: int | None = None
    storage: Storage | None = None


class UploadOut(BaseModel):
    """Where the app put an uploaded model directory: the artifact_path to finish the job with."""

    artifact_path: str
    sha256: str
    bytes: int


class LeaseIn(Strict):
    lease: Annotated[str, StringConstraints(min_length=1, max_length=32)]


class HeartbeatIn(LeaseIn):
    """Keeps the lease; may carry progress, new metrics lines and log lines."""

    step: int | None = Field(default=None, ge=0)
    total_steps: int | None = Field(default=None, ge=0)
    # Lines of metrics.jsonl from position `metrics_from` on (replacing any stored from there).
    metrics_from: int | None = Field(default=None, ge=0)
    metrics: list[dict[str, Any]] = Field(default_factory=list, max_length=10_000)
    log: list[Annotated[str, StringConstraints(max_length=10_000)]] = Field(
        default_factory=list, max_length=1000
    )


class HeartbeatOut(BaseModel):
    lease_expires_at: UtcDateTime
    cancel_requested: bool


class FinishIn(LeaseIn):
    outcome: Literal["succeeded", "failed", "cancelled"]
    error: Annotated[str, StringConstraints(max_length=20_000)] | None = None
    result: dict[str, Any] = Field(default_factory=dict)


# --- Model versions ------------------------------------------------------------------------------


class BaseModelIn(Strict):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    path: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)]


class ModelVersionOut(Out):
    id: int
    name: str
    kind: str
    parent_ids: list[int]
    snapshot: str | None
    config: dict[str, Any]
    metrics: dict[str, Any]
    artifact_path: str
    job_id: int | None
    created_at: UtcDateTime


# --- Evaluations -----------------------------------------------------------------------------


class WinRateOut(Out):
    """Version A's win rate over B: ties count half; low and high bound the 95 % Wilson score
    interval. rate, low and high are null before the first comparison."""

    wins: int
    ties: int
    losses: int
    comparisons: int
    rate: float | None
    low: float | None
    high: float | None


class EvaluationOut(BaseModel):
    job_id: int
    state: str
    model_version_a_id: int
    model_version_b_id: int
    labeler_group: str
    pairs: int = Field(description="prompts answered by both versions")
    wanted: int = Field(description="comparisons asked of labelers")
    win_rate: WinRateOut = Field(description="of version A over version B")


class PairWinRateOut(BaseModel):
    model_version_a_id: int
    model_version_b_id: int
    win_rate: WinRateOut = Field(description="of version A over version B, all evaluations")


class VersionComparisonOut(BaseModel):
    versions: list[ModelVersionOut]
    win_rates: list[PairWinRateOut]
