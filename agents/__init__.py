"""MindGym agents: backbones (supervised), the inference engine (RL) and the dual agent that joins them."""
