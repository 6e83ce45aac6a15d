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
#: Who cares for the child on the first day. The 2018 MCA count, the latest national figure,
#: found 96 % with grandparents and 4 % with other relatives and no "no guardian" group: the
#: 2016-17 campaign placed the 36万 children the 2016 screening had found without a guardian
#: (4.0 %) with guardians. The 2018 figure does not break out children whose one parent is away
#: and the other incapable, so that group keeps its 2016 share (3.4 %) and the 2018 split applies
#: to the rest. Children without a guardian still arise during the run (a caregiver dies, is
#: hospitalised or leaves: the breakdown outcome) and stay so until one is arranged.
CAREGIVER_SHARES = {
    "grandparent": round(0.96 * (1 - 0.034), 4),
    "relative": round(0.04 * (1 - 0.034), 4),
    "parent": 0.034,
    "none": 0.0,
}
#: 2016 screening: about 3.5 % lived with grandparents or relatives in poor guardianship,
#: split here between insufficient (监护不足) and improper (监护失当) capacity.
POOR_GUARDIANSHIP_SHARE = 0.035
POOR_IMPROPER_PART = 0.35
#: How often the parents phone the child: the ledger's weekly / monthly / quarterly / yearly /
#: never contact codes. The 2015 white paper counts, of about 6,100万 left-behind children,
#: 260万+ with no phone call from their parents in the whole year (4.3 %), 885万 with one or two
#: (14.5 %) and 1,519万 with one about every three months (24.9 %) (明报 report of the white
#: paper, https://e123.hk/news/285760); the 2017 report on China's floating population (27 poor
#: counties, Dec 2016 - Jan 2017) found 40.4 % phoning weekly
#: (http://qg.jlnongji.cn/info.asp?id=106452); monthly is the rest. (How often children *see*
#: their parents is another figure, below.)
CONTACT_SHARES = (0.404, 0.159, 0.249, 0.145, 0.043)
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
#: Probability parents come home for the Spring Festival, and monthly probability they drop in
#: at another time, by contact code. Chosen so that how often children see their parents in a
#: year matches the 2015 white paper (1,054 children: never 15.1 %, once or twice 29.4 %, three
#: or four times 11.7 %, five times or more 43.8 %): these give 14.5 %, 31.1 %, 10.8 % and 43.6 %.
SF_RETURN = (0.95, 0.95, 0.9, 0.3, 0.05)
PARENT_DROP_IN = (0.9, 0.2, 0.05, 0.01, 0.0)
#: Monthly probability a household's parents come back for good (file closed), and the
#: multiplier in the weeks after the Spring Festival when most such decisions are made.
RETURN_FOR_GOOD = 0.004
RETURN_AFTER_SF_FACTOR = 4.0
MOVED_AWAY = 0.0008
#: Monthly new registrations per registered child (parents leaving for work), doubled in the
#: month after the Spring Festival when parents leave again.
ENTRY_RATE = 0.0075
ENTRY_AFTER_SF_FACTOR = 2.0
#: Monthly chance that contact is proposed to move one step up or down; the move is accepted
#: with probability min(1, share of the new code / share of the old), so the contact shares
#: stay at ``CONTACT_SHARES`` throughout the run (a Metropolis step).
CONTACT_DRIFT = 0.01

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

#: Caregivers' ages on the first day (years: mean, sd, lower and upper clip) by relation. The
#: 2017 floating-population report (27 poor counties, 2016-17) gives an average caregiver age
#: of 58.2 with nearly 95 % grandparents; grandparents at 59.5 give that average with the
#: relatives and parents below.
CAREGIVER_AGE = {
    "grandparent": (59.5, 7.0, 45.0, 88.0),
    "relative": (45.0, 8.0, 25.0, 70.0),
    "parent": (38.0, 6.0, 25.0, 55.0),
}

# -- Guardianship capacity chain (household, monthly probabilities) ------------------------------
# Calibrated so the run keeps the first day's shares (the 2016 screening's 3.5 % poor
# guardianship among grandparents and relatives, a third of it improper) instead of drifting
# away from them: with the earlier rates (decline 0.4 %, improper 0.12 % a month) poor
# guardianship rose from 3.5 % to about 13 % of those households within two years.
K_DECLINE = 0.0008  # normal → insufficient at caregiver age 65, ×exp(0.05 per year)
K_DECLINE_AGE = 0.05
#: One parent away and the other without guardianship capacity (the MCA definition): the
#: parent at home stays mostly insufficient (about three quarters, as on the first day).
K_DECLINE_PARENT = 0.09
K_DECLINE_WINTER = 1.3
K_RECOVER = 0.03  # insufficient → normal
K_TO_IMPROPER = 0.0004  # normal → improper, ×exp(0.5 h)
K_IMPROPER_RECOVER = 0.03
K_INSUFFICIENT_TO_IMPROPER = 0.002
K_IMPROPER_TO_INSUFFICIENT = 0.01
#: Absent → a guardian is arranged (half a month). The required response to a child without a
#: guardian is immediate (国发〔2016〕13号: the police order the parents back or to entrust a
#: guardian, else temporary guardianship), and the 2018 count found no standing no-guardian group
#: although breakdowns keep happening: absence lasts weeks, not the earlier eight months.
K_ABSENT_TO_NORMAL = 0.35  # a capable guardian is arranged
K_ABSENT_TO_INSUFFICIENT = 0.15

# -- School engagement chain (child, monthly) ----------------------------------------------------
E_DRIFT = 0.012  # engaged → drifting (scattered unexcused absences)
E_DRIFT_MIDDLE = 0.6
E_DRIFT_BOY = 0.3
E_DRIFT_K = (0.0, 0.5, 0.7, 0.9)
E_DRIFT_FRAILTY = 0.5
E_DRIFT_POVERTY = 0.3
E_DRIFT_ABILITY = -0.3
E_SETTLE = 0.12  # drifting → engaged
#: How long an unexcused-absence episode lasts (school days away, drawn at its start): 6-14 and
#: 15-30 with these shares, else 31-100, except the share that never comes back (below 14 and
#: at 14-15). The national dropout ledger fell from about 60万 to 831 children by November
#: 2020 (note §3): persuasion to return brings back nearly everyone, so a pupil who never
#: returns is rare (the earlier 8 % and 30 % left 3-4 % of all children out of school for good
#: by the end of two years).
EPISODE_SHORT = 0.5
EPISODE_MEDIUM = 0.25
EPISODE_NEVER = (0.01, 0.05)

# -- Poverty support (household, monthly) --------------------------------------------------------
#: 低保 granted ×exp(hardship), withdrawn, and moved up to 特困. The grant rate keeps the share
#: near the 2018 count's 1.2 % (before, 0.06 % a month tripled it within two years).
POVERTY_GAIN = 0.0001
POVERTY_LOSS = 0.015
POVERTY_UP = 0.0008

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
INJURY_BASE = -5.72
INJURY_BOY = 0.35
INJURY_SUMMER = 0.2
INJURY_K = 0.3
INJURY_STRESS = 0.2
INJURY_RECORDED = 0.35

#: Share of drowning incidents that are fatal. The generator makes about 87 drowning incidents
#: per 100,000 children a year (300k run); 12 % fatal gives about 10.4 deaths per 100,000, near
#: the rural-west figure of 10.6 (note §3, 2014 national drowning figures).
DROWNING_FATAL = 0.12

# -- Recording (how outcomes reach ledgers) ------------------------------------------------------
RECORD_VISIT_WINDOW = 30  # days: a recent visit makes a village-sourced record likely
RECORD_UNVISITED_FACTOR = 0.45

__all__: list[str] = []
