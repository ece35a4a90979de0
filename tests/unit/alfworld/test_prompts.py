"""ALFWorld prompts and the action projection (verl-agent's format, research note §2.5)."""

from __future__ import annotations

from turngym.envs.alfworld.prompts import Step, parse_action, step_prompt, task_of


def test_first_step_prompt_without_history() -> None:
    text = step_prompt("put a mug in desk", "You arrive at desk 1.", ["go to bed 1", "help", "look"])
    assert text.startswith(
        "Your current observation is: You arrive at desk 1.\n"
        "Your admissible actions of the current situation are: ['go to bed 1'\n 'look'].\n\n"
    )
    assert text.endswith("present it within <action> </action> tags.")


def test_history_keeps_the_last_k_steps_numbered_from_the_start() -> None:
    history = [Step(f"obs {i}", f"act {i}") for i in range(1, 5)]
    text = step_prompt("t", "now", ["look"], history, history_length=2)
    assert (
        "Prior to this step, you have already taken 4 step(s). Below are the most recent 2 observations "
        "and the corresponding actions you took: [Observation 3: 'obs 3', Action 3: 'act 3']\n"
        "[Observation 4: 'obs 4', Action 4: 'act 4']\n"
        "You are now at step 5 and your current observation is: now\n"
    ) in text
    assert "obs 2" not in text


def test_parse_action_projection() -> None:
    assert parse_action("<think>go</think><action>Go To Desk 1</action>") == ("go to desk 1", True)
    assert parse_action("<action>look</action>") == ("look", False)
    assert parse_action("<think>\u4f60\u597d</think><action>look</action>") == ("look", False)
    assert parse_action("I will just go to the desk number one now") == (
        " go to the desk number one now",
        False,
    )


def test_task_of_reads_the_intro() -> None:
    intro = "-= Welcome to TextWorld, ALFRED! =-\n\nYou are in...\n\nYour task is to: put a mug in desk."
    assert task_of(intro) == "put a mug in desk"
    assert task_of("no task here") == ""


def test_env_prompt_tracks_the_task_history_and_admissible_actions() -> None:
    from turngym.envs.alfworld.env import ALFWorldEnv

    env = ALFWorldEnv(split="valid_seen")
    env.reset(seed=0, options={"task_id": 5})
    first = env.prompt()
    assert first.startswith("Your current observation is: -= Welcome to TextWorld, ALFRED! =-")
    assert first.count("Your task is to: put a hot mug in diningtable.") == 1
    env.step("go to microwave 1")
    env.step("open microwave 1")
    env.step("go to coffeemachine 1")
    text = env.prompt(history_length=1)
    assert (
        "[Observation 3: 'You open the microwave 1. The microwave 1 is open. In it, you see a potato 1.', "
        in text
    )
    assert "Action 3: 'go to coffeemachine 1']" in text
    assert "'take mug 1 from coffeemachine 1'" in text and "'help'" not in text
    assert "You are now at step 4 and your current observation is: You arrive at coffeemachine 1." in text
