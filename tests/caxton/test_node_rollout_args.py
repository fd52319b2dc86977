"""``agents.reload`` arguments become the rollout tunables the node hands the manager."""

from __future__ import annotations

import pytest

from caxton.control import protocol
from caxton.node import rollout_config_for
from caxton.rollout import AnalysisThresholds, RolloutConfig


def reload_args(**fields: object) -> protocol.AgentsReloadArgs:
    args = protocol.validate_args("agents.reload", {"name": "a", **fields})
    assert isinstance(args, protocol.AgentsReloadArgs)
    return args


def test_no_tunables_means_node_defaults() -> None:
    assert rollout_config_for(reload_args(strategy="canary")) is None


def test_thresholds_and_step_settings_reach_the_rollout_config() -> None:
    cfg = rollout_config_for(reload_args(strategy="canary", steps=[10, 100],
                                         step_interval_s=2.0, max_error_rate=0.2,
                                         max_p99_ratio=3.0, max_fuel_ratio=4.0))
    assert cfg is not None
    assert cfg.steps == (10, 100) and cfg.step_duration == 2.0
    defaults = AnalysisThresholds()
    assert cfg.thresholds == AnalysisThresholds(
        max_error_rate=0.2, max_p99_ratio=3.0, max_fuel_ratio=4.0,
        min_success_rate=defaults.min_success_rate, p99_slack_ms=defaults.p99_slack_ms,
        min_requests=defaults.min_requests)
    only_rate = rollout_config_for(reload_args(strategy="canary", max_error_rate=0.01))
    assert only_rate is not None
    assert only_rate.thresholds.max_error_rate == 0.01
    assert only_rate.thresholds.max_p99_ratio == defaults.max_p99_ratio
    assert only_rate.step_duration == RolloutConfig().step_duration


@pytest.mark.parametrize(("fields", "delay"), [
    ({"scale_down_delay_s": 0.5}, 0.5),
    ({"step_interval_s": 2.0}, 2.0),                          # the step interval, as before
    ({"step_interval_s": 2.0, "scale_down_delay_s": 0}, 0.0),  # the explicit delay wins
])
def test_blue_green_scale_down_delay(fields: dict[str, float], delay: float) -> None:
    cfg = rollout_config_for(reload_args(strategy="blue-green", **fields))
    assert cfg is not None and cfg.scale_down_delay == delay
