"""Every number the synthetic population is calibrated with, in one place.

Shares marked "note §3" come from ``shared/research/china-policy-and-stats.md`` section 3 and
are checked against the generated population in ``docs/synthetic-population.md``. Hazard
coefficients (log scale, per average month of exposure) are assumptions, tuned so the 90-day
outcome rates land in the ranges the project asked for; they are not published figures.
"""

from __future__ import annotations

# -- Population shares (note §3) ----------------------------------------------------------------
#: 2018 MCA count: 54.5 % boys.
SHARE_BOYS = 0.545
#: 2018 MCA count: ages 0-5 21.7 %, 6-13 67.4 %, 14-15 10.9 % (the under-16 band).
AGE_BAND_SHARES = ((0, 5, 0.217), (6, 13, 0.674), (14, 15, 0.109))
#: 2016 screening: grandparents 89.3 %, relatives or friends 3.3 %, one parent away and the
#: other incapable 3.4 %, no guardian 4.0 %.
CAREGIVER_SHARES = {"grandparent": 0.893, "relative": 0.033, "parent": 0.034, "none": 0.040}
#: 2016 screening: about 3.5 % lived with grandparents or relatives in poor guardianship,
#: split here between insufficient (监护不足) and improper (监护失当) capacity.
POOR_GUARDIANSHIP_SHARE = 0.035
POOR_IMPROPER_PART = 0.35
#: 2015 white paper (1,054 children): saw parents 3-4 times a month 11.1 %, at least 5 times a
#: year 32.7 %, 3-4 times a year 11.7 %, 1-2 times a year 29.4 %, never 15.1 %. Mapped in order
#: onto the ledger's weekly / monthly / quarterly / yearly / never contact codes.
CONTACT_SHARES = (0.111, 0.327, 0.117, 0.294, 0.151)
#: 2018 MCA count: 0.5 % disabled, 0.1 % seriously ill (4.2万 children, read as 0.1-0.3 %).
SHARE_DISABLED = 0.005
SHARE_SERIOUSLY_ILL = 0.002
#: 2018 MCA count: minimum-income families 8万+ of 697万 (1.15 %), extreme-poverty support
#: 5,000+ (0.07 %); both are lower bounds, so slightly higher shares are used.
SHARE_DIBAO = 0.012
SHARE_TEKUN = 0.001
#: Household registration: almost all rural; "no hukou" is a named key group (龙里 seed).
SHARE_URBAN_HUKOU = 0.025
SHARE_NO_HUKOU = 0.008
#: Chongqing-like ethnicity: Han everywhere, Tujia and Miao concentrated in a few counties.
ETHNICITY_MINORITY_COUNTY = (0.38, 0.45, 0.15, 0.005, 0.015)
ETHNICITY_OTHER_COUNTY = (0.965, 0.025, 0.007, 0.001, 0.002)
#: Left-behind siblings: children per household (assumption; rural families of 1-4).
HOUSEHOLD_SIZE_SHARES = (0.45, 0.40, 0.13, 0.02)

# -- Schooling -----------------------------------------------------------------------------------
SHARE_LATE_SCHOOL_START = 0.25  # one grade behind their age, common in rural schools
SHARE_KINDERGARTEN = 0.8  # ages 3-5 enrolled in the central school's kindergarten
SHARE_COMPULSORY_ENROLLED = 0.985
SHARE_SENIOR_HIGH = 0.6  # continue to senior high school after grade 9

# -- Parents and migration -----------------------------------------------------------------------
#: Probability parents come home for the Spring Festival, by contact code.
SF_RETURN = (0.95, 0.9, 0.8, 0.65, 0.05)
#: Monthly probability a household's parents come back for good (file closed), and the
#: multiplier in the weeks after the Spring Festival when most such decisions are made.
RETURN_FOR_GOOD = 0.004
RETURN_AFTER_SF_FACTOR = 4.0
MOVED_AWAY = 0.0008
#: Monthly new registrations per registered child (parents leaving for work), doubled in the
#: month after the Spring Festival when parents leave again.
ENTRY_RATE = 0.0075
ENTRY_AFTER_SF_FACTOR = 2.0
CONTACT_DRIFT = 0.01  # monthly chance that contact moves one step

# -- Latent stress (unobserved; seen only through visits, screenings and absences) -------------
STRESS_RHO = 0.85
STRESS_SD = 0.7  # stationary sd around the child's own mean
STRESS_MEAN_MENTAL = 0.35  # loading of the child's mental frailty on its mean stress
STRESS_MEAN_LOW_CONTACT = 0.3
STRESS_MEAN_INCAPABLE_PARENT = 0.2
STRESS_MEAN_DISABILITY = 0.2
STRESS_JUMP_HARM = 0.5  # an adverse event raises stress for the following months
STRESS_JUMP_MENTAL = 0.8
STRESS_JUMP_CEILING = 2.5  # no further lift above this many sds over the child's mean

# -- Guardianship capacity chain (household, monthly probabilities) ------------------------------
K_DECLINE = 0.004  # normal → insufficient at caregiver age 65, ×exp(0.05 per year)
K_DECLINE_AGE = 0.05
K_DECLINE_PARENT = 0.012
K_DECLINE_WINTER = 1.3
K_RECOVER = 0.03  # insufficient → normal
K_TO_IMPROPER = 0.0012  # normal → improper, ×exp(0.5 h)
K_IMPROPER_RECOVER = 0.03
K_INSUFFICIENT_TO_IMPROPER = 0.002
K_IMPROPER_TO_INSUFFICIENT = 0.01
K_ABSENT_TO_NORMAL = 0.04  # a capable guardian is arranged
K_ABSENT_TO_INSUFFICIENT = 0.08

# -- School engagement chain (child, monthly) ----------------------------------------------------
E_DRIFT = 0.012  # engaged → drifting (scattered unexcused absences)
E_DRIFT_MIDDLE = 0.6
E_DRIFT_BOY = 0.3
E_DRIFT_K = (0.0, 0.5, 0.7, 0.9)
E_DRIFT_FRAILTY = 0.5
E_DRIFT_POVERTY = 0.3
E_DRIFT_ABILITY = -0.3
E_SETTLE = 0.12  # drifting → engaged

# -- Outcome intensities: shared terms (log scale) -----------------------------------------------
CONTACT_EFFECT = {
    "harm": (-0.3, 0.0, 0.25, 0.4, 0.65),
    "dropout": (-0.1, 0.0, 0.1, 0.25, 0.3),
    "breakdown": (-0.2, 0.0, 0.1, 0.2, 0.45),
    "mental": (-0.3, 0.0, 0.15, 0.35, 0.6),
}
#: Loading of the latent stress on each domain's log intensity, and the sd of the unrecorded
#: monthly shock (a row of the same domain shares one shock).
STRESS_LOADING = {"harm": 0.45, "dropout": 0.35, "breakdown": 0.0, "mental": 0.9}
SHOCK_SD = {"harm": 0.5, "dropout": 0.5, "breakdown": 0.6, "mental": 0.55}
#: Effect of parents being home (fraction of the month in the Spring Festival window).
HOME_EFFECT = {"harm": -0.8, "dropout": 0.0, "breakdown": -0.8, "mental": -0.6}
#: Extra log intensity when guardianship is absent and the child does not board (lives alone).
ALONE_EXTRA = 0.35

# -- Accidental injuries (not an outcome domain) -------------------------------------------------
#: 16,459 children in 27 poor counties: annual injury incidence 8.88 %, higher for boys.
INJURY_BASE = -5.8
INJURY_BOY = 0.35
INJURY_SUMMER = 0.2
INJURY_K = 0.3
INJURY_STRESS = 0.2
INJURY_RECORDED = 0.35

#: Share of drowning incidents that are fatal. The generator makes about 90 drowning incidents
#: per 100,000 children a year (1M run); 12 % fatal gives about 10.6 deaths per 100,000, the
#: rural-west figure (note §3, 2014 national drowning figures).
DROWNING_FATAL = 0.12

# -- Recording (how outcomes reach ledgers) ------------------------------------------------------
RECORD_VISIT_WINDOW = 30  # days: a recent visit makes a village-sourced record likely
RECORD_UNVISITED_FACTOR = 0.45

__all__: list[str] = []
