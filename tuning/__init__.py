"""KerasTuner searches over the trainer's settings, and the ELBO-vs-KL frontier (the paper's Figure 2).

    python -m tuning.search --flagfile=demo.flags --tuner=grid --directory=runs/search --tune_dropout_rate=0.1,0.5
    python -m tuning.frontier runs/search --out frontier.png --csv frontier.csv
"""

from gd_bottleneck.cli import quiet_tensorflow_start

quiet_tensorflow_start()
