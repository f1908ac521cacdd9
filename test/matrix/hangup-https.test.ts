import { defineHangupMatrix } from './helpers/cases.js'

defineHangupMatrix('https')
