"""``fastem show FILE[:/DATASET] -o PICTURE.png``: a quick look at any input or output.

The drawing is :func:`fastem.io.show.show` (montage for stacks, orthogonal slices for volumes,
log scale for diffraction, curves for R-factor / loss histories, centroids as images).
"""

from __future__ import annotations

import click


@click.command("show")
@click.argument("spec", metavar="FILE[:/DATASET]")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Picture to write (.png, .pdf, .svg, .jpg).")
@click.option("--max-images", type=click.IntRange(min=1), default=16, show_default=True,
              help="Most images in a montage of a stack.")
@click.option("--overwrite", is_flag=True, help="Replace the picture if it exists.")
def command(spec, output, max_images, overwrite):
    """Draw any file fastem reads or writes: image stacks as a montage, volumes as three
    orthogonal slices, diffraction patterns on a log scale, R-factor and loss histories as
    curves, cluster centroids as images.

    \b
    Examples:
      fastem show recon.cxi -o recon.png
      fastem show scans.h5:/scan/partial -o partial.png --max-images 9
    """
    from fastem.config import settings
    from fastem.io.show import show

    result = show(spec, output, overwrite=overwrite, max_images=max_images)
    if not settings.quiet:
        click.echo(f"{output}: {len(result.panels)} panel(s) ({result.description})")
