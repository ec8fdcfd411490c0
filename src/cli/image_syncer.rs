//! `promoter image-syncer`: kyma image-syncer's command line, flag for flag
//! (its `SYNCER_*` environment too), carried out by promoter's pin, plan
//! and run. Like image-syncer it writes unless `--dry-run` is given (README,
//! "Switching from kyma image-syncer").

use std::path::PathBuf;

use clap::{ArgAction, Args};

use promoter::manifest::intent::{self, ReadOptions};
use promoter::registry::{Credential, Secret};

use super::args::{Format, RegistryArgs, WideArgs};
use super::output::{self, say, Exit};
use super::sync::{sync_shown, usable, Shown};
use super::Ctx;

/// image-syncer's flags.
#[derive(Args, Debug)]
#[command(after_help = "Examples:
  promoter image-syncer --images-file external-images.yaml --target-repo-prefix europe-docker.pkg.dev/p/prod/external/ --dry-run
  SYNCER_IMAGES_FILE=external-images.yaml SYNCER_TARGET_REPO_PREFIX=registry.example/external/ promoter image-syncer

Without --dry-run it promotes, as image-syncer pushes. Exit: 0 synced, 1 invalid file or key
file, 2 usage, 3 refused (a target tag holds another digest: tags are never overwritten),
4 a registry could not be read or written.")]
pub(crate) struct ImageSyncerArgs {
    /// The YAML file that lists the images (`images: [{source, tag}]`).
    #[arg(
        short = 'i',
        long,
        value_name = "FILE",
        env = "SYNCER_IMAGES_FILE",
        required = true
    )]
    images_file: Option<PathBuf>,
    /// The target repository prefix, joined to each source as text
    /// (`registry.example/external/`).
    #[arg(
        short = 'r',
        long,
        value_name = "PREFIX",
        env = "SYNCER_TARGET_REPO_PREFIX"
    )]
    target_repo_prefix: Option<String>,
    /// A JSON key file: sent to the target as Basic `_json_key` and the
    /// file's bytes (wins over --access-token).
    #[arg(
        short = 't',
        long,
        value_name = "FILE",
        env = "SYNCER_TARGET_REPO_AUTH_KEY"
    )]
    target_repo_auth_key: Option<PathBuf>,
    /// An access token sent to the target as `Authorization: Bearer`.
    #[arg(
        short = 'a',
        long,
        value_name = "TOKEN",
        env = "SYNCER_ACCESS_TOKEN",
        hide_env_values = true
    )]
    access_token: Option<String>,
    /// Do every read and comparison, write nothing (`--dry-run=false` writes).
    #[arg(long, env = "SYNCER_DRY_RUN", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, default_value = "false", value_parser = go_bool)]
    dry_run: bool,
    /// More detail: debug logging (as -vv) and each plan line in full.
    #[arg(long, env = "SYNCER_DEBUG", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, default_value = "false", value_parser = go_bool)]
    pub(crate) debug: bool,
    /// Accepted and ignored, as image-syncer ignores positional arguments.
    #[arg(hide = true, value_name = "IGNORED")]
    ignored: Vec<String>,
    #[command(flatten)]
    registry: RegistryArgs,
    /// Output format of the plan.
    #[arg(long, value_enum, ignore_case = true, help_heading = "Output")]
    output: Option<Format>,
}

/// A boolean as Go's `strconv.ParseBool` reads it; anything else is an
/// error here (image-syncer would read a misspelt `SYNCER_DRY_RUN` as
/// false, and push).
fn go_bool(text: &str) -> Result<bool, String> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        other => Err(format!(
            "{other:?} is not a boolean (true, false, 1, 0, t, f)"
        )),
    }
}

/// `promoter image-syncer`.
pub(crate) async fn image_syncer(args: ImageSyncerArgs, ctx: &Ctx) -> anyhow::Result<Exit> {
    let file = args
        .images_file
        .clone()
        .expect("clap requires --images-file");
    let options = ReadOptions {
        target_repo_prefix: args.target_repo_prefix.clone(),
        scheduled: false,
    };
    let (loaded, diagnostics) =
        intent::load_with(&file, promoter::manifest::Named::PipesToo, &options);
    let (Some(intent), true) = (loaded, usable(&diagnostics)) else {
        output::error("the images file has problems; nothing was synced");
        return Ok(Exit::Invalid);
    };
    say(format_args!("parsed images file {}", file.display()));
    let mut open = args.registry.open_options()?;
    if let Some(credential) = credential(&args)? {
        for destination in promoter::mirror::sync::destination_hosts(&intent) {
            open.credentials
                .push((destination, credential.1.clone(), credential.0.clone()));
        }
    }
    if args.dry_run {
        say("dry run: nothing is written to the target repository");
    }
    let shown = Shown {
        ctx,
        wide: WideArgs { wide: args.debug },
        format: args.output.unwrap_or_default(),
    };
    let (exit, _) = sync_shown(&intent, &[], &open, !args.dry_run, &shown).await;
    if exit == Exit::Ok {
        say("all images synced successfully");
    }
    Ok(exit)
}

/// The target's credential: the key file's bytes as `_json_key`'s
/// password, else the access token; with the flag it came from.
fn credential(args: &ImageSyncerArgs) -> anyhow::Result<Option<(String, Credential)>> {
    if let Some(key) = &args.target_repo_auth_key {
        let flag = "--target-repo-auth-key";
        return Ok(Some((flag.into(), Credential::json_key_file(key, flag)?)));
    }
    Ok(args
        .access_token
        .as_ref()
        .filter(|t| !t.is_empty())
        .map(|t| {
            (
                "--access-token".into(),
                Credential::RegistryToken(Secret::new(t.clone())),
            )
        }))
}
