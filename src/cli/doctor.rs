//! `gcl-repro doctor`: the toolchain (libtorch, CUDA) and the datasets under the data root.
use super::Context;
use anyhow::Result;

pub fn exec(ctx: &Context) -> Result<()> {
    let _ = ctx.device.resolve()?;
    let (text, ok) = gcl_repro::doctor::report(std::slice::from_ref(&ctx.data_root));
    print!("{text}");
    if !ok {
        anyhow::bail!("the toolchain is not usable (see above)");
    }
    Ok(())
}
