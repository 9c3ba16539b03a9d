"""Campaign specs shared by the design tests: a small crystal campaign and a protein one (for the spec and plan
tests), and a crystal campaign that runs in seconds (CAMPAIGN; CACHE is replaced by a cache folder)."""

BASE = '''# a small crystal campaign
[campaign]
name = "perov"
material = "crystals"

[[stage]]
kind = "generate"
n = 4
steps = 5
[stage.conditions]
elements = "Ba,Ti,O"

[[stage]]
kind = "relax"
max_steps = 5

[[stage]]
kind = "score"
reference = "perov_5:test"
reference_limit = 5

[[stage]]
kind = "filter"
expr = "valid and density > 1"

[[stage]]
kind = "rank"
columns = ["density", "n_atoms"]
ascending = [false, true]

[[stage]]
kind = "export"
top_k = 2
'''


PROTEINS = '''[campaign]
name = "binders"
material = "proteins"

[[stage]]
kind = "generate"
lengths = [20]
per_length = 2
steps = 2

[[stage]]
kind = "score"
reference = "default"
diversity = true
[stage.mpnn]
n_sequences = 2

[[stage]]
kind = "deduplicate"
tm_threshold = 0.6

[[stage]]
kind = "filter"
expr = "helix > 0.2 and novelty > 0.1 and cluster >= 0"

[[stage]]
kind = "export"
top_k = 3
formats = ["pdb"]
'''


CAMPAIGN = '''[campaign]
name = "tiny perovskites"
material = "crystals"

[[stage]]
kind = "generate"
model = "perov_5"
n = 4
steps = 10
seed = 3

[[stage]]
kind = "relax"
max_steps = 10

[[stage]]
kind = "score"
reference = "perov_5:test"
reference_limit = 10
n_samples = 4
hull = "mp-elements"
plots = false
cache_dir = "CACHE"

[[stage]]
kind = "filter"
expr = "usable and not (e_hull > 100)"

[[stage]]
kind = "deduplicate"

[[stage]]
kind = "rank"
method = "weighted"
columns = ["e_hull", "density"]
weights = [1.0, 0.5]
ascending = [true, false]

[[stage]]
kind = "export"
top_k = 2
formats = ["cif", "poscar"]
'''
