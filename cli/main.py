import click


@click.group()
def main():
    """pomexport"""
