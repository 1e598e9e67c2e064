//! `kflex crds`: the two CustomResourceDefinitions alone, exactly as `kflex render --system`
//! prints them.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kflex_core::render::{Renderer, TemplateSet};
use kflex_core::settings::Settings;

use super::Format;
use crate::output::{self, Target};

/// Print the ControlPlane and PostCreateHook CRDs
#[derive(Debug, clap::Args)]
pub(crate) struct CrdsArgs {
    /// Output format
    #[arg(short, long, value_enum, default_value_t = Format::Yaml)]
    output: Format,
}

pub(crate) fn run(args: CrdsArgs) -> anyhow::Result<()> {
    let renderer = Renderer::new(Settings::default(), &TemplateSet::embedded())?;
    let mut system = renderer.render_system()?;
    system
        .manifests
        .retain(|m| m.is::<CustomResourceDefinition>());
    let target = Target {
        json: args.output == Format::Json,
        dir: None,
    };
    let formatted = output::finish(system.manifests, &target)?;
    output::write(&target, vec![("crds".to_owned(), formatted)])
}
