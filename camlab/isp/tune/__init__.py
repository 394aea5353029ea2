"""ISP auto-tuning: a black-box search of the tuning file against ground truth, colour accuracy or a detector.

The search engine is Optuna (Akiba, Sano, Yanase, Ohta, Koyama, "Optuna: A Next-generation Hyperparameter
Optimization Framework", KDD 2019): TPE, CMA-ES or NSGA-II samplers (and ``numbered`` random draws, the same
trials for any number of workers, for timing them), trials kept in an RDB store (SQLite in WAL mode here,
PostgreSQL for many machines), so any number of worker processes share one study. The defect guard is an Optuna
constraint on every trial (Optuna's constrained TPE; background: Watanabe and Hutter, "c-TPE: Tree-structured
Parzen Estimator with Inequality Constraints for Expensive Hyperparameter Optimization", IJCAI 2023). Searching an ISP's parameters
against a loss follows Tseng et al., "Hyperparameter Optimization in Black-box Image Processing using
Differentiable Proxies", SIGGRAPH 2019, and Mosleh et al., "Hardware-in-the-loop End-to-end Optimization of Camera
Image Processing Pipelines", CVPR 2020 (here without a proxy: the fast path is cheap enough to be the loop).

- :mod:`camlab.isp.tune.space`: the search space (dotted tuning fields with ranges), checked against the stages'
  own domains before any trial runs.
- :mod:`camlab.isp.tune.objectives`: the measurements (display PSNR/SSIM against unprocessed ground truth,
  CIEDE2000 on the colour-chart DNG, the release detector's person AP50/recall on night renders, fast-path CPU).
- :mod:`camlab.isp.tune.study`: the study (storage, samplers, worker processes, tuned YAML, held-out check, MLflow).
"""
