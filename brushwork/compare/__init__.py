"""The grid of `brushwork compare`: `grid` plans the cells of its --vary axes, `report` draws
the contact sheets and writes index.html, results.csv and results.json. The command is
commands/compare.py; the batch runner (brushwork.batch) computes the cells.
"""
