"""python -m genixer.data.decontamination calibrate|outcome [--images N] [--first SEED] [--folder DIR]"""
from .calibration import main

main()
