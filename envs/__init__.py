"""MindGym environments. Importing this package registers every env under the ``mindgym/`` namespace:

    import envs, gymnasium
    env = gymnasium.make("mindgym/Maze-v0", obs_mode="grid")
    vec = gymnasium.make_vec("mindgym/Maze-v0", num_envs=1024, vectorization_mode="vector_entry_point",
                             device="cuda")

Entry points are strings, so registering imports no family's code until an env is made.
"""

from gymnasium.envs.registration import register, registry

_RECALL_FAMILIES = {
    "Copy": "copy",
    "RepeatCopy": "repeat_copy",
    "AssociativeRecall": "associative",
    "Needle": "needle",
}


def _register(env_id: str, entry_point: str, vector_entry_point: str, **kwargs) -> None:
    if env_id not in registry:
        register(id=env_id, entry_point=entry_point, vector_entry_point=vector_entry_point, kwargs=kwargs)


_register("mindgym/Maze-v0", "envs.maze.env:MazeEnv", "envs.maze.vector:MazeVectorEnv")
for _name, _family in _RECALL_FAMILIES.items():
    _register(
        f"mindgym/{_name}-v0",
        "envs.recall.env:RecallEnv",
        "envs.recall.vector:RecallVectorEnv",
        family=_family,
    )
_register(
    "mindgym/TextQuality-v0",
    "envs.generation.env:TextQualityEnv",
    "envs.generation.vector:TextQualityVectorEnv",
)

ENV_IDS = ["mindgym/Maze-v0", *(f"mindgym/{n}-v0" for n in _RECALL_FAMILIES), "mindgym/TextQuality-v0"]
