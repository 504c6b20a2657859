"""Train: a folder under the data root to a trained model and its latent cache. The run is a process of its own
(train.jobs) that outlives the page, the session and the server; the page reads its folder back."""

import json

import streamlit as st

from dashboard import loaders, paths, run_panels, state, training as tr
from train import jobs
from train.folder_check import plan_split, problem, rule_label
from train.presets import estimate_seconds, load_presets, scaled_config

ctx = state.context()
ss = st.session_state
ROOT = jobs.runs_root()
st.title("Train")
state.flash()


# -- a run going, or the last one ----------------------------------------------------------------------------------
active = jobs.active_run(ROOT)
if active is not None:
    if ss.get("train_start"):  # pressed on a page drawn before this run began
        st.error(f"Not started: a training run is already going ({active.name}), and one runs at a time. Wait for "
                 "it to end, or cancel it.", icon=":material/block:")
    ss["train_watching"] = active.name  # this session saw it going: it opens the cache when it is done
    run_panels.live(active, ROOT)
    st.stop()
runs = jobs.list_runs(ROOT)
watched = ss.pop("train_watching", None)
if watched and jobs.run_status(ROOT / watched, root=ROOT).state == "missing":
    st.error(f"The run folder `{ROOT / watched}` was deleted, with what it had trained; nothing else was touched.")
if runs:
    latest = jobs.run_status(runs[0], root=ROOT)
    if watched == latest.name and latest.state == "done":
        run_panels.open_cache(latest)
    run_panels.ended(latest, ctx, ROOT)
    if len(runs) > 1:
        with st.expander(f"Earlier runs in `{ROOT}`"):
            st.dataframe([tr.run_line(jobs.run_status(r, root=ROOT)) for r in runs[1:20]], hide_index=True)

# -- a new run -----------------------------------------------------------------------------------------------------
st.header("Train on a folder")
folders = loaders.find_data_folders(str(ctx.data_root))
try:
    presets = load_presets()
    bases = {name: p.base() for name, p in presets.items()}
except ValueError as exc:
    st.error(str(exc))
    st.stop()
if not folders:
    st.info(f"No FITS files found under the data root `{ctx.data_root}` (ASTROAE_DATA_ROOT): copy a folder of FITS "
            "images there, then reload.", icon=":material/folder_open:")
    st.stop()
counts = dict(folders)
folder = st.selectbox("Folder under the data root", list(counts), key="train_folder",
                      format_func=lambda f: f"{f}  ({counts[f]:,} FITS files)")
base = bases.get(ss.get("train_preset")) or next(iter(bases.values()))
try:
    src = paths.resolve_within(folder, [ctx.data_root])
    contents = tr.folder_contents(str(src), loaders.mtime(src), json.dumps(base.preprocess.to_dict()),
                                  str(ctx.data_root))
except (paths.PathNotAllowed, OSError) as exc:  # PathNotAllowed is a ValueError; a folder gone since the listing
    st.error(f"Cannot read `{folder}`: {exc}")
    st.stop()
rules = {"auto": "the number ending the name", "": "each file alone", "regex": "a regular expression"}
kind = st.radio("Group the files by", list(rules), format_func=rules.get, horizontal=True, key="train_rule",
                help="Files of one group stay on one side of the train/validation split (e.g. the bands of one "
                     "galaxy), so the validation images are ones the model never saw.")
group_regex = st.text_input("Regular expression: its first group names a file's group", r"_(\d+)\.fits",
                            key="train_regex") if kind == "regex" else kind
plan = plan_split(contents.paths, group_regex=group_regex, val_fraction=base.val_fraction, seed=base.seed)
c = st.columns(4)
c[0].metric("usable images", f"{len(contents.paths):,}")
c[1].metric("unreadable files", len(contents.skipped))
c[2].metric("groups", f"{plan.n_groups:,}")
c[3].metric("train / validation", f"{plan.n_train:,} / {plan.n_val:,}")
examples = ", ".join(f"`{f}` → `{g}`" for f, g in plan.examples)
st.caption(f"Grouped by {rule_label(group_regex)}: {plan.train_groups:,} groups to train on, {plan.val_groups:,} "
           f"to validate on; the largest holds {plan.largest:,} file{'s' if plan.largest != 1 else ''}. {examples}")
if contents.skipped:
    n_bad = len(contents.skipped)
    with st.expander(f"{n_bad} file{'s' if n_bad != 1 else ''} cannot be read and will be skipped"):
        st.dataframe([{"file": p, "reason": r} for p, r in contents.skipped], hide_index=True)
why = problem(contents, plan)
if why:
    st.error(why, icon=":material/block:")

n_train = max(plan.n_train, 1)
configs = {name: scaled_config(bases[name], steps=p.steps, n_train=n_train).replace(group_regex=group_regex)
           for name, p in presets.items()}
speeds = {name: tr.training_speed(json.dumps(cfg.to_dict()), str(ROOT / "speed.json")) for name, cfg in bases.items()}


def preset_label(name: str) -> str:
    cfg, (speed, _) = configs[name], speeds[name]
    took = tr.duration(estimate_seconds(cfg, n_train=n_train, n_val=plan.n_val, images_per_s=speed.images_per_s,
                                        epoch_seconds=speed.epoch_seconds)) if speed else "time unknown"
    return f"**{name}**: {presets[name].steps:,} steps, {cfg.epochs:,} epochs, {took}"


name = st.radio("Preset", list(presets), format_func=preset_label, key="train_preset",
                captions=[p.about for p in presets.values()])
speed, speed_error = speeds[name]
st.caption(f"Times from this machine's measured speed: {speed.images_per_s:.0f} training images a second, and "
           f"{speed.epoch_seconds:.2f} s an epoch for its checkpoints." if speed else
           f"The training speed could not be measured: {speed_error}")
cache_dir = ctx.data_root / "caches"
if st.button("Start training", type="primary", icon=":material/model_training:", disabled=bool(why),
             key="train_start"):
    run_name = jobs.new_run_name(folder)
    try:
        with st.spinner("Starting the training process…"):
            run = jobs.start_run(configs[name], src, root=ROOT, name=run_name, cache_dir=cache_dir / run_name,
                                 preset=name, confine_to=ctx.data_root)
    except (jobs.RunInProgress, RuntimeError, ValueError, OSError) as exc:
        st.error(f"Could not start: {exc}")
    else:
        ss["train_watching"] = run.name
        st.rerun()
st.caption(f"The run goes to `{ROOT}` (ASTROAE_RUNS_ROOT) and its cache to `{cache_dir}`; it goes on if you leave "
           "this page or close the browser.")
