"""The network sizes of `make demo` (apps/demo.py): each agent's keys over its defaults, small enough that a
run of 20k env steps takes minutes on one CPU thread. The bench's collection-overlap rows (iqrl/bench/
overlap.py) and the CPU-scale FSQ ablation (ablations/fsq_levels_cpu.yaml) train at the same sizes."""

AGENT_OVERRIDES = {
    "iqrl": [
        "agent.mlp_dims=[128,128]",
        "agent.enc_mlp_dims=[128]",
        "agent.latent_dim=32",
        "agent.batch_size=128",
    ],
    "td3": ["agent.mlp_dims=[128,128]", "agent.batch_size=128"],
}
